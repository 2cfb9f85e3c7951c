/*
 * test_duration.c -- parsing and printing durations.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "duration.h"

static int parse(const char *s, uint64_t *ms)
{
    return saga__duration_parse(s, strlen(s), ms);
}

Test(duration, single_units)
{
    uint64_t ms;
    cr_assert_eq(parse("250ms", &ms), 0);
    cr_assert_eq(ms, 250);
    cr_assert_eq(parse("2s", &ms), 0);
    cr_assert_eq(ms, 2000);
    cr_assert_eq(parse("1m", &ms), 0);
    cr_assert_eq(ms, 60000);
    cr_assert_eq(parse("1h", &ms), 0);
    cr_assert_eq(ms, 3600000);
}

Test(duration, combined_forms_largest_unit_first)
{
    uint64_t ms;
    cr_assert_eq(parse("1m30s", &ms), 0);
    cr_assert_eq(ms, 90000);
    cr_assert_eq(parse("1h30m", &ms), 0);
    cr_assert_eq(ms, 5400000);
    cr_assert_eq(parse("2s500ms", &ms), 0);
    cr_assert_eq(ms, 2500);
    cr_assert_eq(parse("1h1m1s1ms", &ms), 0);
    cr_assert_eq(ms, 3661001);
}

Test(duration, zero_with_or_without_unit)
{
    uint64_t ms = 7;
    cr_assert_eq(parse("0", &ms), 0);
    cr_assert_eq(ms, 0);
    ms = 7;
    cr_assert_eq(parse("0s", &ms), 0);
    cr_assert_eq(ms, 0);
    ms = 7;
    cr_assert_eq(parse("0ms", &ms), 0);
    cr_assert_eq(ms, 0);
}

Test(duration, malformed_text_is_refused)
{
    const char *bad[] = {"", "5", "s", "ms", "1.5s", "-1s", "+1s", "1 s", "1sec",
                         "1s1m", "1s1s", "1d", "1ms2s", "1m 30s", "1S", "10x",
                         "1hh", "s1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t ms = 42;
        cr_assert_eq(parse(bad[i], &ms), -EINVAL, "'%s' should be refused", bad[i]);
        cr_assert_eq(ms, 42, "'%s' must not touch the result", bad[i]);
    }
}

Test(duration, at_most_24_hours)
{
    uint64_t ms;
    cr_assert_eq(parse("24h", &ms), 0);
    cr_assert_eq(ms, SAGA__DURATION_MAX_MS);
    cr_assert_eq(parse("86400000ms", &ms), 0);
    cr_assert_eq(parse("24h1ms", &ms), -ERANGE);
    cr_assert_eq(parse("25h", &ms), -ERANGE);
    cr_assert_eq(parse("86400001ms", &ms), -ERANGE);
    cr_assert_eq(parse("99999999999999999999999999s", &ms), -ERANGE);
    /* A syntax error wins over the range. */
    cr_assert_eq(parse("99999999999999999999999999", &ms), -EINVAL);
}

Test(duration, format_is_shortest_exact_form)
{
    char buf[32];
    cr_assert_str_eq(saga__duration_format(0, buf, sizeof(buf)), "0s");
    cr_assert_str_eq(saga__duration_format(250, buf, sizeof(buf)), "250ms");
    cr_assert_str_eq(saga__duration_format(90000, buf, sizeof(buf)), "1m30s");
    cr_assert_str_eq(saga__duration_format(3600000, buf, sizeof(buf)), "1h");
    cr_assert_str_eq(saga__duration_format(3661001, buf, sizeof(buf)), "1h1m1s1ms");
}

Test(duration, retention_takes_days_up_to_ten_years)
{
    uint64_t ms = 0;
    cr_assert_eq(saga__retention_parse("30d", 3, &ms), 0);
    cr_assert_eq(ms, 30 * 86400000ull);
    cr_assert_eq(saga__retention_parse("1d12h", 5, &ms), 0);
    cr_assert_eq(ms, 36 * 3600000ull);
    cr_assert_eq(saga__retention_parse("3650d", 5, &ms), 0);
    cr_assert_eq(saga__retention_parse("3651d", 5, &ms), -ERANGE);
    cr_assert_eq(saga__retention_parse("99999999999999999999d", 21, &ms), -ERANGE);
    cr_assert_eq(saga__retention_parse("1h1d", 4, &ms), -EINVAL);
    /* Days are for retentions only. */
    cr_assert_eq(saga__duration_parse("1d", 2, &ms), -EINVAL);
}
