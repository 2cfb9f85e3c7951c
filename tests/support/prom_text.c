/*
 * prom_text.c -- reading and checking /metrics texts (see prom_text.h).
 */
#include "prom_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "saga_proc.h"

#define PROMTOOL "/usr/bin/promtool"

double prom_sample(const char *text, const char *series) {
    size_t n = strlen(series);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

void prom_get(const char *base, const char *path, const char *token, http_resp_t *out) {
    char a[300];
    const char *headers[2] = {NULL, NULL};
    if (token != NULL) {
        snprintf(a, sizeof(a), "Authorization: Bearer %s", token);
        headers[0] = a;
    }
    CURLcode rc = http_call(base, "GET", path, NULL, headers, 10000L, out);
    cr_assert_eq(rc, CURLE_OK, "GET %s%s: %s", base, path, curl_easy_strerror(rc));
}

void prom_assert_guarded(const char *base) {
    static const char *const tokens[] = {NULL, "wrong-token-0123456789"};
    http_resp_t r;
    for (size_t i = 0; i < 2; i++) {
        prom_get(base, "/metrics", tokens[i], &r);
        cr_assert_eq(r.status, 401, "/metrics with %s: %ld %s",
                     tokens[i] != NULL ? "a wrong token" : "no token", r.status, r.body);
        http_resp_free(&r);
    }
    prom_get(base, "/healthz", NULL, &r);
    cr_assert_eq(r.status, 200, "/healthz is open: %ld %s", r.status, r.body);
    http_resp_free(&r);
}

void prom_check(const char *dir, const char *what, const char *text) {
    cr_assert(access(PROMTOOL, X_OK) == 0,
              "%s is missing: promtool checks the metrics text; install the Debian package "
              "`prometheus` (scripts/deps.sh does, without starting its service)", PROMTOOL);
    char in[700], out[700], cmd[2000];
    snprintf(in, sizeof(in), "%s/metrics.txt", dir);
    snprintf(out, sizeof(out), "%s/promtool.out", dir);
    saga_proc_write_file(in, text);
    snprintf(cmd, sizeof(cmd), PROMTOOL " check metrics < '%s' > '%s' 2>&1", in, out);
    int st = system(cmd);
    char *said = saga_proc_slurp(out);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "promtool check metrics refused %s's /metrics (status %d):\n%s\n--- text:\n%s",
              what, st, said, text);
    free(said);
}
