/*
 * prom_text.h -- test harness: reading a /metrics text (Prometheus format
 * 0.0.4) and having promtool check it, for the suites of `saga worker
 * --metrics`, `saga serve` and `saga relay --metrics`. Tests only.
 */
#ifndef SAGA_TEST_PROM_TEXT_H
#define SAGA_TEST_PROM_TEXT_H

#include "http_client.h"

/* The value of the sample line that begins with `series` + " " (e.g.
 * `name{label="v"}`), or -1 when there is none. */
double prom_sample(const char *text, const char *series);

/* GET base + path with `token` as a bearer token (or none); fails the test
 * when the request cannot be made. Free `out` with http_resp_free. */
void prom_get(const char *base, const char *path, const char *token, http_resp_t *out);

/* A token file guards /metrics of the server at `base` but not /healthz:
 * /metrics without a token and with a wrong one is 401, /healthz without
 * one is 200. (What a valid token gets is the caller's to check.) */
void prom_assert_guarded(const char *base);

/* Runs `promtool check metrics` on `text` (written under `dir`); fails the
 * test with what promtool said, naming `what`. Without promtool the test
 * fails saying how to install it. */
void prom_check(const char *dir, const char *what, const char *text);

#endif
