/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_store_pg_hosts.c - which host a PostgreSQL connect starts with
 * (src/store/pg_hosts.c), without a server: a host that gave no answer is
 * tried last next time, the host, hostaddr and port lists turn together, a
 * single port serves every host, and connect_timeout sets the answer bound.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pg_int.h"

static void value_is(const struct pg_hosts *h, const char *kw,
                         const char *want)
{
    char *v = pg_hosts_value(h, kw);
    if (!want) {
        assert_null(v);
        return;
    }
    assert_non_null(v);
    assert_string_equal(v, want);
    free(v);
}

static void silent_first_host_is_tried_last(void **state)
{
    struct pg_hosts h;
    char err[200];
    assert_int_equal(pg_hosts_parse(&h, "postgresql://u@a:1,b:2,c:3/db?"
                                    "connect_timeout=4", err, sizeof err), 0);
    assert_int_equal(h.nhosts, 3);
    assert_int_equal(h.timeout_ms, 4000);
    value_is(&h, "host", "a,b,c");
    value_is(&h, "port", "1,2,3");
    /* a gave no answer: b first, a last */
    pg_hosts_skip(&h, "a", "1");
    value_is(&h, "host", "b,c,a");
    value_is(&h, "port", "2,3,1");
    value_is(&h, "dbname", "db");
    /* then c (two past b): a, then b */
    pg_hosts_skip(&h, "c", "3");
    value_is(&h, "host", "a,b,c");
    value_is(&h, "port", "1,2,3");
    pg_hosts_free(&h);
}

static void one_port_for_every_host_and_the_same_host_twice(void **state)
{
    struct pg_hosts h;
    char err[200];
    assert_int_equal(pg_hosts_parse(&h, "host=x,x port=5,6", err, sizeof err),
                     0);
    assert_int_equal(h.timeout_ms, PG_ANSWER_TIMEOUT_MS);
    pg_hosts_skip(&h, "x", "6"); /* the second x: back to the first */
    value_is(&h, "host", "x,x");
    value_is(&h, "port", "5,6");
    pg_hosts_skip(&h, "x", "5");
    value_is(&h, "port", "6,5");
    pg_hosts_free(&h);

    /* no port in the URI (libpq's default for each): a, b, then b, a */
    assert_int_equal(pg_hosts_parse(&h, "postgresql://a,b/db", err,
                                    sizeof err), 0);
    value_is(&h, "sslmode", NULL);
    pg_hosts_skip(&h, "b", "5432");
    value_is(&h, "host", "a,b");
    pg_hosts_skip(&h, "a", "5432");
    value_is(&h, "host", "b,a");
    pg_hosts_free(&h);
}

static void one_host_and_unknown_hosts_change_nothing_wrong(void **state)
{
    struct pg_hosts h;
    char err[200];
    assert_int_equal(pg_hosts_parse(&h, "postgresql://a:1/db?connect_timeout=1",
                                    err, sizeof err), 0);
    assert_int_equal(h.timeout_ms, 2000); /* libpq's minimum */
    pg_hosts_skip(&h, "a", "1");
    value_is(&h, "host", "a");
    pg_hosts_free(&h);
    /* a host libpq names that is not in the list: the next one */
    assert_int_equal(pg_hosts_parse(&h, "postgresql://a:1,b:2/db", err,
                                    sizeof err), 0);
    pg_hosts_skip(&h, NULL, NULL);
    value_is(&h, "host", "b,a");
    pg_hosts_free(&h);
}

static void bad_uri_is_refused_with_why(void **state)
{
    struct pg_hosts h;
    char err[200] = "";
    assert_int_equal(pg_hosts_parse(&h, "postgresql://a/db?nonsense=1", err,
                                    sizeof err), -1);
    assert_non_null(strstr(err, "nonsense"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(silent_first_host_is_tried_last),
        cmocka_unit_test(one_port_for_every_host_and_the_same_host_twice),
        cmocka_unit_test(one_host_and_unknown_hosts_change_nothing_wrong),
        cmocka_unit_test(bad_uri_is_refused_with_why),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
