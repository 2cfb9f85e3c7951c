/* stored_def.c -- see stored_def.h. */
#include "core/stored_def.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga/errors.h"

typedef struct stored_def_rq_s {
    saga_stored_def_cb cb;
    void *data;
    char hash[65];
} stored_def_rq_t;

static void on_text(int status, const char *text, size_t len, void *data) {
    stored_def_rq_t *rq = data;
    saga_diags_t diags;
    saga_diags_init(&diags);
    saga_def_t *def = NULL;
    char why[512];
    why[0] = '\0';
    if (status != 0) {
        snprintf(why, sizeof(why), "definition %s is not in the store: %s", rq->hash,
                 saga_strerror(status));
    } else {
        char source[96];
        snprintf(source, sizeof(source), "sagadef:%s", rq->hash);
        def = saga_def_load_buffer(source, text, len, &diags);
        if (def == NULL) {
            status = SAGA_ECORRUPT;
            snprintf(why, sizeof(why), "definition %s does not load: %s%s", rq->hash,
                     diags.count ? diags.items[0].message : "unknown error",
                     diags.count > 1 ? " (and more)" : "");
        } else if (strcmp(def->hash, rq->hash) != 0) {
            status = SAGA_ECORRUPT;
            snprintf(why, sizeof(why), "stored definition %s hashes to %s with this engine",
                     rq->hash, def->hash);
            saga_def_free(def);
            def = NULL;
        }
    }
    rq->cb(status, status == 0 ? NULL : why, def, &diags, rq->data);
    saga_diags_close(&diags);
    free(rq);
}

int saga_stored_def_load(saga_store_t *s, const char *hash, saga_stored_def_cb cb,
                         void *data) {
    if (hash == NULL || strlen(hash) != 64)
        return -EINVAL;
    stored_def_rq_t *rq = malloc(sizeof(*rq));
    if (rq == NULL)
        return -ENOMEM;
    rq->cb = cb;
    rq->data = data;
    memcpy(rq->hash, hash, 65);
    int rc = s->ops->get_definition(s, hash, on_text, rq);
    if (rc != 0)
        free(rq);
    return rc;
}
