#include <criterion/criterion.h>
#include <string.h>

#include "orbit/error.h"
#include "orbit/trace.h"

#define GOOD "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

Test(trace, parse_and_format_round_trip)
{
    struct trace_ctx c;
    cr_assert_eq(trace_parse(GOOD, &c), 0);
    cr_assert_eq(c.trace_id[0], 0x4b);
    cr_assert_eq(c.trace_id[15], 0x36);
    cr_assert_eq(c.span_id[0], 0x00);
    cr_assert_eq(c.span_id[7], 0xb7);
    cr_assert_eq(c.flags, 0x01);
    cr_assert(trace_sampled(&c));
    char buf[TRACE_PARENT_LEN + 1];
    cr_assert_eq(trace_format(&c, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, GOOD);
    cr_assert_eq(trace_format(&c, buf, TRACE_PARENT_LEN), ORBIT_EINVAL);

    char id[33], span[17];
    cr_assert_eq(trace_id_hex(&c, id, sizeof id), 0);
    cr_assert_str_eq(id, "4bf92f3577b34da6a3ce929d0e0e4736");
    cr_assert_eq(trace_span_hex(&c, span, sizeof span), 0);
    cr_assert_str_eq(span, "00f067aa0ba902b7");
    cr_assert_eq(trace_id_hex(&c, id, 32), ORBIT_EINVAL);

    cr_assert_eq(
        trace_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                    &c),
        0);
    cr_assert_not(trace_sampled(&c));
}

Test(trace, invalid_values)
{
    struct trace_ctx c;
    const char *bad[] = {
        "",
        "00",
        /* uppercase */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        /* wrong lengths */
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-010",
        /* all-zero ids */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        /* separators and digits */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        /* a future version must be followed by '-' if longer */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(trace_parse(bad[i], &c), ORBIT_EFORMAT, "%s", bad[i]);
    cr_assert_eq(
        trace_parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    &c),
        ORBIT_EVERSION);
    cr_assert_eq(trace_parse(NULL, &c), ORBIT_EINVAL);
}

Test(trace, future_versions_read_by_their_prefix)
{
    struct trace_ctx c;
    cr_assert_eq(
        trace_parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    &c),
        0);
    cr_assert_eq(
        trace_parse(
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever",
            &c),
        0);
    char buf[TRACE_PARENT_LEN + 1];
    cr_assert_eq(trace_format(&c, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, GOOD, "formatted as version 00");
}

Test(trace, new_and_child)
{
    struct trace_ctx a, b, child;
    cr_assert_eq(trace_new(TRACE_FLAG_SAMPLED, &a), 0);
    cr_assert_eq(trace_new(0, &b), 0);
    cr_assert_neq(memcmp(a.trace_id, b.trace_id, TRACE_ID_LEN), 0);
    cr_assert(trace_sampled(&a));
    cr_assert_not(trace_sampled(&b));

    char buf[TRACE_PARENT_LEN + 1];
    struct trace_ctx back;
    cr_assert_eq(trace_format(&a, buf, sizeof buf), 0);
    cr_assert_eq(trace_parse(buf, &back), 0, "%s", buf);
    cr_assert_eq(memcmp(&a, &back, sizeof a), 0);

    cr_assert_eq(trace_child(&a, &child), 0);
    cr_assert_eq(memcmp(child.trace_id, a.trace_id, TRACE_ID_LEN), 0);
    cr_assert_neq(memcmp(child.span_id, a.span_id, TRACE_SPAN_LEN), 0);
    cr_assert_eq(child.flags, a.flags);
    cr_assert_eq(trace_format(&child, buf, sizeof buf), 0);
    cr_assert_eq(trace_parse(buf, &back), 0);
}
