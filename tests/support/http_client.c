/*
 * http_client.c -- test harness: see http_client.h.
 */
#include "http_client.h"

#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <criterion/criterion.h>

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
    http_resp_t *r = ud;
    size_t k = sz * n;
    char *nb = realloc(r->body, r->len + k + 1);
    cr_assert_not_null(nb);
    r->body = nb;
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = '\0';
    return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
    http_resp_t *r = ud;
    size_t k = sz * n, room = sizeof(r->headers) - 1 - r->hlen;
    memcpy(r->headers + r->hlen, p, k < room ? k : room);
    r->hlen += k < room ? k : room;
    r->headers[r->hlen] = '\0';
    return k;
}

CURLcode http_call(const char *base, const char *method, const char *path, const char *body,
                   const char *const *headers, long timeout_ms, http_resp_t *out) {
    memset(out, 0, sizeof(*out));
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    char url[1024];
    if (strncmp(base, "unix:", 5) == 0) {
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, base + 5);
        snprintf(url, sizeof(url), "http://localhost%s", path);
    } else {
        snprintf(url, sizeof(url), "%s%s", base, path);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    /* No "Expect: 100-continue" of curl's own (a second's wait per large
     * body), unless the caller asks for one: a body the server refuses by
     * its Content-Length (413) is then never sent, where sending it races
     * with the server closing the connection (a reset before the answer
     * is read). */
    bool expect = false;
    for (const char *const *p = headers; p != NULL && *p != NULL; p++)
        expect = expect || strncasecmp(*p, "Expect:", 7) == 0;
    struct curl_slist *h = expect ? NULL : curl_slist_append(NULL, "Expect:");
    for (; headers != NULL && *headers != NULL; headers++)
        h = curl_slist_append(h, *headers);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &out->secs);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (out->body == NULL)
        out->body = calloc(1, 1);
    out->json = json_loads(out->body, 0, NULL);
    return rc;
}

void http_resp_free(http_resp_t *r) {
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}
