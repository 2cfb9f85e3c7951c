/*
 * fuzz_relay_row.c -- libFuzzer target for the checks `saga relay` makes
 * of an outbox row it read from a service's database
 * (engine/relay/relay_row.c): any id, saga name and input text either
 * pass (the input is then a JSON object) or are refused with a one-line
 * reason free of control characters, fit for the row's `error` column.
 *
 * Input: id NUL saga NUL input (missing parts are empty; an input that
 * starts with NUL stands for one over the size limit).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "relay/relay.h"
#include "relay/relay_row.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 3);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = buf[size + 2] = '\0';
    const char *id = buf;
    const char *saga = id + strlen(id) + 1;
    if (saga > buf + size)
        saga = buf + size + 1;
    const char *input = saga + strlen(saga) + 1;
    if (input > buf + size + 1)
        input = buf + size + 2;
    bool too_big = input < buf + size && input[0] == '\0';
    json_t *j = NULL;
    char err[SAGA_RELAY_ERROR_MAX + 1];
    int rc = saga_relay_row_check(id, saga, too_big ? NULL : input, "2000000", &j, err,
                                  sizeof(err));
    if (rc == 0) {
        if (!json_is_object(j))
            abort();
        json_decref(j);
    } else {
        if (rc != -EINVAL || j != NULL || err[0] == '\0')
            abort();
        for (const char *p = err; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                abort();
    }
    free(buf);
    return 0;
}
