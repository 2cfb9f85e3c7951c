/*
 * test_checkpoint.c -- reading a saga's record back (checkpoint.c): a
 * record edited by hand or damaged is refused with an error that names the
 * field, in one printable line; what the engine writes is read back
 * exactly. Several cases came from the record fuzzer (tests/fuzz).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "core/engine_internal.h"
#include "saga/errors.h"
#include "harness.h"

static th_t T;

static void teardown(void) { th_free(&T); }

TestSuite(checkpoint, .fini = teardown);

/* Step c has no compensation; a's has its own retry policy. */
static const char *const yaml =
    "saga: ckpt\n"
    "version: 1\n"
    "steps:\n"
    "  - name: a\n"
    "    action: {handler: demo.echo, with: {n: 1}}\n"
    "    compensation: {handler: demo.noop}\n"
    "    compensation_retry: {max_attempts: 3, initial_delay: 1ms}\n"
    "  - name: b\n"
    "    action: {handler: demo.noop}\n"
    "    compensation: {handler: demo.noop}\n"
    "    retry: {max_attempts: 3, backoff: exponential, initial_delay: 1ms, max_delay: 5ms}\n"
    "  - name: c\n"
    "    action: {handler: demo.noop}\n"
    "    compensation: none\n";

/* A record as a store hands it over: values are bytes of their exact
 * length, not NUL-terminated (store.h). `kv` is "field", "value" pairs
 * ending with NULL; a value may hold a NUL when its length is given in
 * `lens` (0: strlen). */
typedef struct rec_s {
    saga_record_t rec;
    saga_kv_t kv[32];
} rec_t;

static void rec_build(rec_t *r, const char *const *kv, const size_t *lens) {
    memset(r, 0, sizeof(*r));
    r->rec.fields = r->kv;
    for (size_t i = 0; kv[2 * i] != NULL; i++) {
        cr_assert_lt(i, 32);
        size_t vlen = lens && lens[i] ? lens[i] : strlen(kv[2 * i + 1]);
        char *v = malloc(vlen ? vlen : 1);
        memcpy(v, kv[2 * i + 1], vlen);
        r->kv[i] = (saga_kv_t){kv[2 * i], strlen(kv[2 * i]), v, vlen};
        r->rec.nfields++;
    }
}

static void rec_free(rec_t *r) {
    for (size_t i = 0; i < r->rec.nfields; i++)
        free((char *)r->kv[i].val);
}

/* The record of a saga stopped while compensating, as the engine writes
 * it, with field `key` replaced by (or, when absent, added as) `value`;
 * value NULL leaves the field out. */
static void base_record(rec_t *r, const char *key, const char *value, size_t vlen) {
    const char *kv[64] = {
        "id", "t-1", "saga", "ckpt", "input", "{\"n\":1}", "seq", "9", "state", "compensating",
        "reason", "step 'b' failed", "created", "1795500056093", "owner", "w1", "fence", "2",
        "cancel", "1", "act:a", "succeeded 1 0 0", "out:a", "{\"n\":1}",
        "act:b", "failed 3 0 0", "err:b", "refused", "comp:b", "succeeded 1 0 0",
        "comp:a", "waiting 2 0 1795500058584", "cerr:a", "timeout", NULL};
    size_t lens[32] = {0};
    size_t n = 0;
    bool found = false;
    while (kv[2 * n] != NULL)
        n++;
    for (size_t i = 0; i < n; i++) {
        if (key != NULL && strcmp(kv[2 * i], key) == 0) {
            found = true;
            if (value == NULL) {
                memmove(&kv[2 * i], &kv[2 * i + 2], (2 * (n - i) - 1) * sizeof(kv[0]));
                n--;
                break;
            }
            kv[2 * i + 1] = value;
            lens[i] = vlen;
        }
    }
    if (key != NULL && !found && value != NULL) {
        kv[2 * n] = key;
        kv[2 * n + 1] = value;
        lens[n] = vlen;
        kv[2 * n + 2] = NULL;
    }
    rec_build(r, kv, lens);
}

/* Decodes the base record with one field changed; returns the status and
 * leaves the message in `err`. */
static int decode_with(const char *key, const char *value, size_t vlen, char *err,
                       size_t errlen) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T, yaml);
    rec_t r;
    base_record(&r, key, value, vlen);
    saga_inst_t *inst = saga__inst_new(T.engine, d, "t-1");
    cr_assert_not_null(inst);
    err[0] = '\0';
    int rc = saga__ckpt_decode(inst, &r.rec, err, errlen);
    saga__inst_free(inst);
    rec_free(&r);
    th_run_until(&T, 0);
    th_free(&T);
    return rc;
}

#define ASSERT_REFUSED(key, value, vlen, expected)                                  \
    do {                                                                            \
        char err_[512];                                                             \
        int rc_ = decode_with(key, value, vlen, err_, sizeof(err_));                \
        cr_assert_eq(rc_, SAGA_ECORRUPT, "%s='%s' decoded (%d)", key, value, rc_);  \
        cr_assert_str_eq(err_, expected);                                           \
    } while (0)

Test(checkpoint, a_record_as_written_decodes) {
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T, yaml);
    rec_t r;
    base_record(&r, NULL, NULL, 0);
    saga_inst_t *inst = saga__inst_new(T.engine, d, "t-1");
    char err[512] = "";
    cr_assert_eq(saga__ckpt_decode(inst, &r.rec, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(inst->state, SAGA_STATE_COMPENSATING);
    cr_assert_eq(inst->seq, 9);
    cr_assert_eq(inst->fence, 2);
    cr_assert_eq(inst->created_ms, 1795500056093);
    cr_assert(inst->cancel_requested);
    cr_assert_str_eq(inst->reason, "step 'b' failed");
    cr_assert_eq(inst->steps[0].comp.status, SAGA_CKPT_WAITING);
    cr_assert_eq(inst->steps[0].comp.attempts, 2);
    cr_assert_eq(inst->steps[0].comp.retry_at, 1795500058584);
    cr_assert_eq(inst->steps[1].act.status, SAGA_CKPT_FAILED);
    cr_assert_str_eq(inst->steps[1].error, "refused");
    cr_assert_eq(inst->steps[2].act.status, SAGA_CKPT_PENDING);
    cr_assert_eq(inst->steps[2].comp.status, SAGA_CKPT_PENDING);
    saga__inst_free(inst);
    rec_free(&r);
    th_run_until(&T, 0);
}

/* Found by the fuzzer: the state was quoted raw, control bytes and all. */
Test(checkpoint, a_bad_state_is_quoted_in_one_printable_line) {
    static const char state[] = "c:\x01\n\0ompleted";
    ASSERT_REFUSED("state", state, sizeof(state) - 1,
                   "saga t-1: field 'state' is 'c:???ompleted', not a saga state");
}

/* A NUL ended the comparison: "completed\0junk" was a valid state. */
Test(checkpoint, a_state_is_the_whole_field) {
    static const char state[] = "completed\0junk";
    ASSERT_REFUSED("state", state, sizeof(state) - 1,
                   "saga t-1: field 'state' is 'completed?junk', not a saga state");
}

Test(checkpoint, a_long_value_is_quoted_shortened) {
    ASSERT_REFUSED("state", "running-running-running-running-running-running", 0,
                   "saga t-1: field 'state' is 'running-running-running-running-running-...', "
                   "not a saga state");
}

/* Found by the fuzzer: sscanf() took "succeeded \t1 0 0" and the like,
 * which saga.lua's phase_parse() does not (saga retry skipped them). */
Test(checkpoint, a_phase_is_read_exactly_as_written) {
    static const char *const bad[] = {
        "succeeded \t1 0 0", " succeeded 1 0 0", "succeeded  1 0 0", "succeeded +1 0 0",
        "succeeded -0 0 0", "succeeded 01 0 0", "succeeded 1 0 0 ", "succeeded 1 0",
        "succeeded 1 0 0 0", "succeeded 1 2 0", "succeeded 4294967296 0 0",
        "waiting 1 0 9223372036854775808", "waiting 1 0 99999999999999999999", "done 1 0 0",
        "Succeeded 1 0 0", "", "succeeded", "succeeded 1 0 0\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        saga_ckpt_phase_t p = {0};
        cr_assert_neq(saga_ckpt_phase_parse(bad[i], strlen(bad[i]), &p), 0, "'%s' parsed",
                      bad[i]);
    }
    static const char good[] = "waiting 4294967295 4294967295 9223372036854775807";
    saga_ckpt_phase_t p = {0};
    cr_assert_eq(saga_ckpt_phase_parse(good, strlen(good), &p), 0);
    cr_assert_eq(p.status, SAGA_CKPT_WAITING);
    cr_assert_eq(p.attempts, UINT32_MAX);
    cr_assert_eq(p.base, UINT32_MAX);
    cr_assert_eq(p.retry_at, INT64_MAX);
    char buf[96];
    size_t n = saga_ckpt_phase_format(buf, sizeof(buf), &p);
    cr_assert_eq(n, strlen(good));
    cr_assert_str_eq(buf, good, "written back as it was read");
}

Test(checkpoint, a_malformed_phase_names_its_field_and_the_format) {
    ASSERT_REFUSED("act:b", "failed\t3 0 0", 0,
                   "saga t-1: field 'act:b' is 'failed?3 0 0', "
                   "not '<status> <attempts> <base> <retry_at>'");
}

/* Found by the fuzzer's invariants: any state was taken. saga retry puts
 * the saga back into its stuck_in state. */
Test(checkpoint, stuck_in_is_running_or_compensating) {
    ASSERT_REFUSED("stuck_in", "completed", 0,
                   "saga t-1: field 'stuck_in' is 'completed', not 'running', 'compensating' or 'confirming'");
}

/* A compensation recorded as started for a step that has none made a
 * resume call a handler that does not exist (a NULL one). */
Test(checkpoint, a_step_without_compensation_has_none_running) {
    ASSERT_REFUSED("comp:c", "running 1 0 0", 0,
                   "saga t-1: field 'comp:c' is 'running', but step 'c' has no compensation");
}

Test(checkpoint, a_step_with_a_compensation_is_not_skipped) {
    ASSERT_REFUSED("comp:a", "skipped 0 0 0", 0,
                   "saga t-1: field 'comp:a' is 'skipped', but step 'a' has a compensation");
}

/* created and fence were read as 0 when they were not numbers: a fence 0
 * means no ownership check. */
Test(checkpoint, numbers_are_plain_decimals) {
    ASSERT_REFUSED("seq", "007", 0, "saga t-1: field 'seq' is '007', not a number");
    ASSERT_REFUSED("seq", NULL, 0, "saga t-1: record has no 'seq'");
    ASSERT_REFUSED("fence", "1e3", 0, "saga t-1: field 'fence' is '1e3', not a number");
    ASSERT_REFUSED("created", "-1", 0,
                   "saga t-1: field 'created' is '-1', not a time in Unix ms");
    ASSERT_REFUSED("created", "9223372036854775808", 0,
                   "saga t-1: field 'created' is '9223372036854775808', not a time in Unix ms");
}

Test(checkpoint, an_empty_fence_is_no_fence) {
    char err[512];
    cr_assert_eq(decode_with("fence", "", 0, err, sizeof(err)), 0, "%s", err);
}

/* jansson's message quotes the input: "'}' expected near '\x1b'". */
Test(checkpoint, json_errors_are_one_printable_line) {
    ASSERT_REFUSED("out:a", "{\"n\":1\x1b[2J}", 0,
                   "saga t-1: field 'out:a' is not JSON: '}' expected near '?'");
}

/* ---------------------------------------------------------------------- */
/* Out of memory while decoding                                            */
/* ---------------------------------------------------------------------- */

/* A copy of one of the record's text fields cannot be allocated: the
 * decode fails with -ENOMEM and says so, instead of resuming the saga
 * without the text. The allocation is made to fail by a field that claims
 * a length no allocator grants (its bytes are never read: the copy is
 * refused first). Under AddressSanitizer such a request must return NULL
 * instead of stopping the process, hence the default options. */
const char *__asan_default_options(void);
__attribute__((visibility("default"))) const char *__asan_default_options(void) {
    return "allocator_may_return_null=1";
}

static const char *const nomem_yaml =
    "saga: ckpt\n"
    "steps:\n"
    "  - {name: a, action: {handler: demo.noop}, compensation: {handler: demo.noop}}\n"
    "  - {name: b, action: {handler: demo.noop}, compensation: {handler: demo.noop}}\n";

#define HUGE_LEN ((size_t)1 << 62)

/* Decodes a saga stopped while compensating whose field `huge` claims
 * HUGE_LEN bytes; returns the status, the message in `err`. */
static int decode_with_huge(const char *huge, char *err, size_t errlen) {
    static const char *const kv[] = {
        "id", "t-1", "saga", "ckpt", "input", "{}", "seq", "5", "state", "compensating",
        "reason", "step 'b' failed", "created", "1795500056093",
        "act:a", "succeeded 1 0 0", "act:b", "failed 1 0 0", "err:b", "refused",
        "comp:b", "succeeded 1 0 0", "comp:a", "waiting 2 0 1795500058584", "cerr:a", "timeout",
        NULL};
    saga_kv_t fields[16];
    size_t n = 0;
    for (; kv[2 * n] != NULL; n++) {
        fields[n] = (saga_kv_t){kv[2 * n], strlen(kv[2 * n]), kv[2 * n + 1],
                                strlen(kv[2 * n + 1])};
        if (strcmp(kv[2 * n], huge) == 0)
            fields[n].vlen = HUGE_LEN;
    }
    saga_record_t rec = {fields, n, NULL};
    th_init(&T, NULL);
    saga_engine_def_t *d = th_define(&T, nomem_yaml);
    saga_inst_t *inst = saga__inst_new(T.engine, d, "t-1");
    cr_assert_not_null(inst);
    err[0] = '\0';
    int rc = saga__ckpt_decode(inst, &rec, err, errlen);
    saga__inst_free(inst);
    th_run_until(&T, 0);
    return rc;
}

static void check_nomem(const char *field) {
    char err[256];
    int rc = decode_with_huge(field, err, sizeof(err));
    cr_assert_eq(rc, -ENOMEM, "field %s: decode returned %d (%s)", field, rc, err);
    cr_assert_str_eq(err, "saga t-1: out of memory decoding its record");
}

Test(checkpoint, out_of_memory_copying_the_reason) { check_nomem("reason"); }
Test(checkpoint, out_of_memory_copying_an_action_error) { check_nomem("err:b"); }
Test(checkpoint, out_of_memory_copying_a_compensation_error) { check_nomem("cerr:a"); }

/* A TCC state, Confirm or pivot mark in the record of a saga whose
 * definition has none would make a resume run a phase that does not
 * exist: refused, naming the field. */
Test(checkpoint, tcc_and_pivot_fields_need_a_definition_that_has_them) {
    ASSERT_REFUSED("state", "confirming", 0,
                   "saga t-1: its state is confirming, but its definition is not a TCC saga");
    ASSERT_REFUSED("conf:a", "running 1 0 0", 0,
                   "saga t-1: field 'conf:a' is set, but step 'a' has no Confirm (not a TCC saga)");
    ASSERT_REFUSED("pivoted", "1", 0,
                   "saga t-1: field 'pivoted' is set, but its definition has no pivot step");
}

Test(checkpoint, stuck_in_confirming_needs_a_tcc_definition) {
    ASSERT_REFUSED("stuck_in", "confirming", 0,
                   "saga t-1: its state is confirming, but its definition is not a TCC saga");
}
