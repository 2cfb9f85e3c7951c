/*
 * test_timers.c -- the deadline heap (engine/core/timers.c) on a real
 * loop: deadlines fire in time order and never early, a cancelled one
 * never fires, a re-armed one fires once at its new time, callbacks may
 * arm and cancel others, and thousands of entries keep their order.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "core/timers.h"

#define MAXD 4000

typedef struct ent_s {
    saga_deadline_t d;   /* first: the callback gets &d */
    int id;
    uint64_t due;        /* the `when` it was armed for */
    int fired;
} ent_t;

static uv_loop_t loop;
static saga_timers_t timers;
static ent_t ents[MAXD];
static int fired_order[MAXD];
static int nfired;
static uint64_t last_due;
static bool closed;

static void on_fire(saga_deadline_t *d) {
    ent_t *e = (ent_t *)d;
    cr_assert(!saga_deadline_armed(d), "a firing deadline is disarmed first");
    cr_assert_geq(uv_now(&loop), e->due, "deadline %d fired early", e->id);
    cr_assert_geq(e->due, last_due, "deadline %d (due %llu) after one due %llu", e->id,
                  (unsigned long long)e->due, (unsigned long long)last_due);
    last_due = e->due;
    e->fired++;
    fired_order[nfired++] = e->id;
}

static void arm(int id, uint64_t delay) {
    ents[id].id = id;
    cr_assert_eq(saga_deadline_arm(&timers, &ents[id].d, delay, on_fire), 0);
    cr_assert(saga_deadline_armed(&ents[id].d));
    ents[id].due = ents[id].d.when;
}

static void on_closed(uv_handle_t *h) { (void)h; closed = true; }

static void setup(void) {
    memset(ents, 0, sizeof(ents));
    nfired = 0;
    last_due = 0;
    closed = false;
    for (int i = 0; i < MAXD; i++)
        saga_deadline_init(&ents[i].d);
    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(saga_timers_init(&loop, &timers), 0);
}

/* Closes the heap's timer and checks the loop closes cleanly. */
static void finish(void) {
    saga_timers_close(&timers, on_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert(closed);
    cr_assert_eq(uv_loop_close(&loop), 0, "a libuv handle was left open");
}

TestSuite(timers, .init = setup);

Test(timers, fire_in_order_of_their_time) {
    arm(0, 30);
    arm(1, 10);
    arm(2, 20);
    arm(3, 0);
    uv_run(&loop, UV_RUN_DEFAULT); /* ends when nothing is armed */
    cr_assert_eq(nfired, 4);
    int want[] = {3, 1, 2, 0};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(fired_order[i], want[i], "position %d", i);
    finish();
}

Test(timers, a_cancelled_deadline_never_fires) {
    arm(0, 5);
    arm(1, 10);
    arm(2, 15);
    saga_deadline_cancel(&timers, &ents[1].d);
    cr_assert_not(saga_deadline_armed(&ents[1].d));
    saga_deadline_cancel(&timers, &ents[1].d); /* harmless twice */
    saga_deadline_cancel(&timers, &ents[5].d); /* and when never armed */
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(nfired, 2);
    cr_assert_eq(ents[1].fired, 0);
    cr_assert_eq(fired_order[0], 0);
    cr_assert_eq(fired_order[1], 2);
    finish();
}

Test(timers, cancelling_the_earliest_moves_the_timer_on) {
    arm(0, 1);
    arm(1, 20);
    saga_deadline_cancel(&timers, &ents[0].d);
    uint64_t t0 = uv_now(&loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(nfired, 1);
    cr_assert_eq(fired_order[0], 1);
    cr_assert_geq(uv_now(&loop) - t0, 20);
    finish();
}

Test(timers, re_arming_moves_a_deadline_and_it_fires_once) {
    arm(0, 200);
    arm(1, 20);
    arm(0, 5);  /* earlier now */
    arm(1, 40); /* later now */
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(nfired, 2);
    cr_assert_eq(ents[0].fired, 1);
    cr_assert_eq(ents[1].fired, 1);
    cr_assert_eq(fired_order[0], 0);
    cr_assert_eq(fired_order[1], 1);
    cr_assert_lt(uv_now(&loop), 200 + ents[0].due, "the first arming of 0 was dropped");
    finish();
}

/* A callback that re-arms itself and cancels another. */
static int rounds;
static void on_chain(saga_deadline_t *d) {
    ent_t *e = (ent_t *)d;
    e->fired++;
    if (++rounds < 5)
        cr_assert_eq(saga_deadline_arm(&timers, d, 2, on_chain), 0);
    if (rounds == 2)
        saga_deadline_cancel(&timers, &ents[1].d);
}

Test(timers, callbacks_may_arm_and_cancel) {
    rounds = 0;
    cr_assert_eq(saga_deadline_arm(&timers, &ents[0].d, 1, on_chain), 0);
    arm(1, 50);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(ents[0].fired, 5);
    cr_assert_eq(ents[1].fired, 0, "cancelled from inside another callback");
    finish();
}

Test(timers, thousands_of_deadlines_keep_their_order) {
    srand(12345);
    for (int i = 0; i < MAXD; i++)
        arm(i, (uint64_t)(rand() % 60));
    /* Cancel every fifth, re-arm every seventh. */
    int expected = MAXD;
    for (int i = 0; i < MAXD; i += 5) {
        saga_deadline_cancel(&timers, &ents[i].d);
        expected--;
    }
    for (int i = 3; i < MAXD; i += 7)
        if (i % 5 != 0)
            arm(i, (uint64_t)(rand() % 60));
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(nfired, expected);
    for (int i = 0; i < MAXD; i++)
        cr_assert_eq(ents[i].fired, i % 5 != 0, "deadline %d fired %d time(s)", i,
                     ents[i].fired);
    finish();
}

Test(timers, closing_drops_pending_deadlines) {
    arm(0, 10000);
    finish();
    cr_assert_eq(ents[0].fired, 0);
}
