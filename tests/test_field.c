/* nf_field: type names both ways, NAME:TYPE[:POLICY] definitions and lists
   of them (every refusal is NF_EINVAL with a message, never a crash on
   long or odd input), RFC 3339 date-times parsed and formatted back. */
#include "nf_segment.h"
#include "nf_error.h"
#include "nf_test.h"

#include <stdio.h>
#include <string.h>

static void
test_types(void)
{
    for (int t = NF_FIELD_INT; t <= NF_FIELD_DATETIME; t++) {
        nf_ftype_t back;
        CHECK_OK(nf_field_type_parse(nf_field_type_name((nf_ftype_t) t), &back));
        CHECK(back == (nf_ftype_t) t);
    }
    nf_ftype_t t;
    CHECK(nf_field_type_parse("null", &t) == NF_EINVAL);
    CHECK(nf_field_type_parse("Int", &t) == NF_EINVAL);
    CHECK(nf_field_type_parse(NULL, &t) == NF_EINVAL);
    CHECK(!strcmp(nf_field_type_name((nf_ftype_t) 99), "?"));
}

static void
test_defs(void)
{
    nf_field_def_t d;
    CHECK_OK(nf_field_def_parse("year:int", &d));
    CHECK(!strcmp(d.name, "year") && d.type == NF_FIELD_INT && d.policy == NF_MEM_MMAP);
    CHECK_OK(nf_field_def_parse("tags:keyword[]:memory", &d));
    CHECK(d.type == NF_FIELD_KEYWORDS && d.policy == NF_MEM_MEMORY);
    CHECK_OK(nf_field_def_parse("_x9:datetime:mmap", &d));
    static const char *const bad[] = {
        "year", "year:integer", "and:int", "9x:int", ":int", "ye ar:int", "year:int:disk",
        "year:int:", "tags:keyword[]x",
        "a_name_that_is_much_longer_than_the_sixty_three_bytes_a_field_may_have:int",
        "year:a_type_name_longer_than_the_thirty_two_bytes_buffer",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nf_error_set(NF_EINVAL, "-");
        CHECK(nf_field_def_parse(bad[i], &d) == NF_EINVAL);
        CHECK(strcmp(nf_error_msg(), "-") != 0);
    }
    CHECK(nf_field_def_parse(NULL, &d) == NF_EINVAL);
    CHECK(nf_field_name_check("contains", 8) == NF_EINVAL);
    CHECK_OK(nf_field_name_check("contains_x", 10));
    CHECK(nf_field_name_check("", 0) == NF_EINVAL);

    nf_field_def_t defs[3];
    size_t n = 9;
    CHECK_OK(nf_field_defs_parse(" year:int ,, genre:keyword,", defs, 3, &n));
    CHECK(n == 2 && !strcmp(defs[1].name, "genre") && defs[1].type == NF_FIELD_KEYWORD);
    CHECK_OK(nf_field_defs_parse("", defs, 3, &n));
    CHECK(n == 0);
    CHECK_OK(nf_field_defs_parse(NULL, defs, 3, &n));
    CHECK(n == 0);
    CHECK(nf_field_defs_parse("a:int,a:float", defs, 3, &n) == NF_EINVAL);
    CHECK(nf_field_defs_parse("a:int,b:int,c:int,d:int", defs, 3, &n) == NF_EINVAL);
    CHECK(n == 3);
    char longitem[300];
    memset(longitem, 'a', sizeof longitem - 1);
    longitem[sizeof longitem - 1] = '\0';
    CHECK(nf_field_defs_parse(longitem, defs, 3, &n) == NF_EINVAL);
}

static void
test_datetime(void)
{
    int64_t us;
    CHECK_OK(nf_datetime_parse("1970-01-01T00:00:00Z", 20, &us));
    CHECK(us == 0);
    CHECK_OK(nf_datetime_parse("2000-03-01", 10, &us));
    CHECK(us == 951868800ll * 1000000);
    CHECK_OK(nf_datetime_parse("1969-12-31T23:59:59.25Z", 23, &us));
    CHECK(us == -750000);
    char buf[64];
    nf_datetime_format(-750000, buf, sizeof buf);
    CHECK(!strcmp(buf, "1969-12-31T23:59:59.250000Z"));
    /* an offset, a lower-case t and z, digits past microseconds dropped */
    CHECK_OK(nf_datetime_parse("2001-02-03T05:05:06+01:00", 25, &us));
    int64_t z;
    CHECK_OK(nf_datetime_parse("2001-02-03t04:05:06z", 20, &z));
    CHECK(us == z);
    CHECK_OK(nf_datetime_parse("2001-02-03 04:05:06.1234567Z", 28, &us));
    CHECK(us == z + 123456);
    CHECK_OK(nf_datetime_parse("2000-02-29", 10, &us));
    /* formatted back and parsed again: the same microsecond */
    static const int64_t vals[] = {0, 1, -1, 86399999999, -86400000000, 951782400123456,
                                   253402300799999999, -62135596800000000};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        nf_datetime_format(vals[i], buf, sizeof buf);
        CHECK_OK(nf_datetime_parse(buf, strlen(buf), &us));
        CHECK(us == vals[i]);
    }
    static const char *const bad[] = {
        "2001-02-29", "1900-02-29", "2001-02-03T04:05Z", "2001-13-01", "2001-00-10",
        "2001-04-31", "2001-02-03T24:00:00Z", "2001-02-03T04:05:06", "2001-02-03T04:05:06.Z",
        "2001-02-03T04:05:06+0100", "2001-02-03T04:05:06Zx", "2001-2-03", "abcd-ef-gh", "",
        "2001-02-03T04:05:06+01:00:00",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(nf_datetime_parse(bad[i], strlen(bad[i]), &us) == NF_EINVAL);
    /* len bounds the read: the text after it is not looked at */
    CHECK_OK(nf_datetime_parse("2001-02-03garbage", 10, &us));
}

int
main(void)
{
    test_types();
    test_defs();
    test_datetime();
    return nf_test_done("field");
}
