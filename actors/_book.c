/*
 * The feed's per-level hot path, compiled: price-level validation, the L2 order book and OKX's
 * book checksum. actors/book.py documents and re-exports it; the venue adapters use it through
 * that module.
 *
 * Levels are kept as the exchange spelled them, as (price, size) tuples of str, in one sorted
 * array per side. The sort key is the price as a double (negated for bids, so both sides run best
 * first in ascending key order): exchange prices carry far fewer significant digits than a double
 * holds. Real books hold hundreds to a few thousand levels and nearly all changes land near the
 * top, so a binary search and a memmove beat any tree here.
 *
 * Number rule (the same as cluster.events.checked_decimal, which tests hold them to): plain
 * decimal notation, optional exponent, no sign, no spaces: [0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?
 * or \.[0-9]+. Prices must be positive; a size of zero removes a level.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- numbers -------------------------------------------------------------------------- */

static const double POWERS_OF_TEN[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};
#define EXACT_MANTISSA_LIMIT (UINT64_C(1) << 53)

/* Checks the number rule and reads the value. Plain decimals whose digits fit a double's
 * mantissa exactly (nearly every price and size an exchange sends) are one division by an exact
 * power of ten, which IEEE rounds correctly; anything else goes to Python's own strtod. Returns 0,
 * or -1 when the text breaks the rule. */
static int
scan_decimal(const char *s, Py_ssize_t n, double *value)
{
    Py_ssize_t i = 0, digits = 0, fraction_digits = 0;
    uint64_t mantissa = 0;
    int exact = 1;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
        mantissa = mantissa * 10 + (uint64_t)(s[i] - '0');
        exact &= mantissa < EXACT_MANTISSA_LIMIT;
    }
    if (i < n && s[i] == '.') {
        i++;
        Py_ssize_t start = i;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            mantissa = mantissa * 10 + (uint64_t)(s[i] - '0');
            exact &= mantissa < EXACT_MANTISSA_LIMIT;
        }
        fraction_digits = i - start;
        if (digits == 0 && fraction_digits == 0) {
            return -1;
        }
    }
    else if (digits == 0) {
        return -1;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        /* "\.[0-9]+" takes no exponent. */
        if (digits == 0) {
            return -1;
        }
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) {
            i++;
        }
        Py_ssize_t exponent_start = i;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        }
        if (i == exponent_start) {
            return -1;
        }
        exact = 0;
    }
    if (i != n) {
        return -1;
    }
    if (exact && fraction_digits <= 22) {
        *value = (double)mantissa / POWERS_OF_TEN[fraction_digits];
        return 0;
    }
    /* Python's strtod reads up to a NUL, and the text may sit inside a larger buffer. */
    char small[64];
    char *copy = n < (Py_ssize_t)sizeof(small) ? small : PyMem_Malloc(n + 1);
    if (copy == NULL) {
        return -1;
    }
    memcpy(copy, s, n);
    copy[n] = '\0';
    *value = PyOS_string_to_double(copy, NULL, NULL);
    if (copy != small) {
        PyMem_Free(copy);
    }
    if (*value == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

/* NULL, with ValueError naming the text as the venue spelled it. */
static PyObject *
bad_number(const char *text, Py_ssize_t n, const char *reason)
{
    PyObject *shown = PyUnicode_DecodeUTF8(text, n, "replace");
    if (shown != NULL) {
        PyErr_Format(PyExc_ValueError, "%s: %R", reason ? reason : "not a decimal number", shown);
        Py_DECREF(shown);
    }
    return NULL;
}

/* A level's price (positive) and size (zero allowed: it removes the level) read from their
 * text; -1 with ValueError naming the first that breaks the number rule. */
static int
check_numbers(const char *price, Py_ssize_t n_price, const char *size, Py_ssize_t n_size,
              double *price_value, double *size_value)
{
    if (scan_decimal(price, n_price, price_value) < 0) {
        bad_number(price, n_price, NULL);
        return -1;
    }
    if (*price_value == 0.0) {
        bad_number(price, n_price, "must be positive");
        return -1;
    }
    if (scan_decimal(size, n_size, size_value) < 0) {
        bad_number(size, n_size, NULL);
        return -1;
    }
    return 0;
}

/* The UTF-8 text of a str; -1 with ValueError for anything else (no number is spelled so). */
static int
text_of(PyObject *value, const char **text, Py_ssize_t *n)
{
    /* Read in place for the compact ASCII strings that levels hold. */
    if (PyUnicode_CheckExact(value) && PyUnicode_IS_COMPACT_ASCII(value)) {
        *n = PyUnicode_GET_LENGTH(value);
        *text = (const char *)PyUnicode_DATA(value);
        return 0;
    }
    if (!PyUnicode_Check(value) || (*text = PyUnicode_AsUTF8AndSize(value, n)) == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "not a decimal number: %R", value);
        return -1;
    }
    return 0;
}

/* A validated level: its price as a double, its size as a double, and the (price, size) tuple
 * to keep (a new reference). Accepts any sequence whose first two items are the price and the
 * size (OKX sends four items per level). */
typedef struct {
    double price;
    double size;
    PyObject *level;
} Parsed;

/* The price and size of a level, the first two items of a tuple or list (borrowed); 0 when it
 * has no such two. */
static int
level_parts(PyObject *level, PyObject **price, PyObject **size)
{
    if (PyTuple_Check(level) && PyTuple_GET_SIZE(level) >= 2) {
        *price = PyTuple_GET_ITEM(level, 0);
        *size = PyTuple_GET_ITEM(level, 1);
        return 1;
    }
    if (PyList_Check(level) && PyList_GET_SIZE(level) >= 2) {
        *price = PyList_GET_ITEM(level, 0);
        *size = PyList_GET_ITEM(level, 1);
        return 1;
    }
    return 0;
}

static int
parse_level(PyObject *item, Parsed *out)
{
    PyObject *price, *size;
    if (!level_parts(item, &price, &size)) {
        PyErr_Format(PyExc_ValueError, "a price level needs a price and a size, got %R", item);
        return -1;
    }
    const char *price_text, *size_text;
    Py_ssize_t n_price, n_size;
    if (text_of(price, &price_text, &n_price) < 0 || text_of(size, &size_text, &n_size) < 0 ||
        check_numbers(price_text, n_price, size_text, n_size, &out->price, &out->size) < 0) {
        return -1;
    }
    if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2 && PyUnicode_CheckExact(price) &&
        PyUnicode_CheckExact(size)) {
        Py_INCREF(item);
        out->level = item;
    }
    else {
        out->level = PyTuple_Pack(2, price, size);
        if (out->level == NULL) {
            return -1;
        }
    }
    return 0;
}

static void
release_parsed(Parsed *parsed, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_XDECREF(parsed[i].level);
    }
    PyMem_Free(parsed);
}

/* Every level of ``levels`` validated, or NULL with ValueError set; nothing half-done. */
static Parsed *
parse_levels(PyObject *levels, Py_ssize_t *count)
{
    PyObject *seq = PySequence_Fast(levels, "price levels must be a sequence");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Parsed *parsed = PyMem_Calloc(n > 0 ? n : 1, sizeof(Parsed));
    if (parsed == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (parse_level(items[i], &parsed[i]) < 0) {
            release_parsed(parsed, i);
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    *count = n;
    return parsed;
}

/* ---- levels straight from JSON ------------------------------------------------------- */

typedef struct {
    const char *at;
    const char *end;
} Cursor;

static void
skip_space(Cursor *c)
{
    while (c->at < c->end && (*c->at == ' ' || *c->at == '\t' || *c->at == '\n' || *c->at == '\r')) {
        c->at++;
    }
}

static int
expect(Cursor *c, char wanted)
{
    /* Venues write compact JSON: the wanted character is nearly always the next one. */
    if (c->at < c->end && *c->at == wanted) {
        c->at++;
        return 1;
    }
    skip_space(c);
    if (c->at < c->end && *c->at == wanted) {
        c->at++;
        return 1;
    }
    return 0;
}

/* A JSON string's text up to its closing quote. Numbers never hold escapes, and the number
 * check refuses any text that does; an escaped quote ends the text early and breaks the JSON
 * after it, which is refused too. */
static int
read_plain_string(Cursor *c, const char **text, Py_ssize_t *n)
{
    if (!expect(c, '"')) {
        return 0;
    }
    const char *close = memchr(c->at, '"', c->end - c->at);
    if (close == NULL) {
        return 0;
    }
    *text = c->at;
    *n = close - c->at;
    c->at = close + 1;
    return 1;
}

/* Skips one scalar JSON value (the extra entries venues add to a level, such as OKX's order
 * count). */
static int
skip_scalar(Cursor *c)
{
    skip_space(c);
    if (c->at < c->end && *c->at == '"') {
        const char *text;
        Py_ssize_t n;
        return read_plain_string(c, &text, &n);
    }
    const char *start = c->at;
    while (c->at < c->end && *c->at != ',' && *c->at != ']' && *c->at != ' ' && *c->at != '\t' &&
           *c->at != '\n' && *c->at != '\r' && *c->at != '[' && *c->at != '{' && *c->at != '"') {
        c->at++;
    }
    return c->at > start;
}

static PyObject *
ascii_text(const char *text, Py_ssize_t n)
{
    PyObject *str = PyUnicode_New(n, 127);
    if (str != NULL) {
        memcpy(PyUnicode_DATA(str), text, n);
    }
    return str;
}

/* One level, [price, size, ...], with both numbers checked, as a validated level. */
static int
read_level(Cursor *c, Parsed *out)
{
    const char *price, *size;
    Py_ssize_t n_price, n_size;
    if (!expect(c, '[') || !read_plain_string(c, &price, &n_price) || !expect(c, ',') ||
        !read_plain_string(c, &size, &n_size)) {
        return -1;
    }
    while (expect(c, ',')) {
        if (!skip_scalar(c)) {
            return -1;
        }
    }
    if (!expect(c, ']')) {
        return -1;
    }
    if (check_numbers(price, n_price, size, n_size, &out->price, &out->size) < 0) {
        return -1;
    }
    PyObject *level = PyTuple_New(2);
    if (level == NULL) {
        return -1;
    }
    PyObject *price_text = ascii_text(price, n_price);
    PyObject *size_text = price_text ? ascii_text(size, n_size) : NULL;
    if (size_text == NULL) {
        Py_XDECREF(price_text);
        Py_DECREF(level);
        return -1;
    }
    PyTuple_SET_ITEM(level, 0, price_text);
    PyTuple_SET_ITEM(level, 1, size_text);
    out->level = level;
    return 0;
}

/* Every level of a JSON level array (any buffer: bytes, msgspec.Raw), validated, or NULL with
 * ValueError naming the first bad number or where the JSON went wrong. */
static Parsed *
parse_json_levels(PyObject *raw, Py_ssize_t *count)
{
    Py_buffer view;
    if (PyObject_GetBuffer(raw, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Cursor c = {.at = view.buf, .end = (const char *)view.buf + view.len};
    Py_ssize_t n = 0, cap = 32;
    Parsed *parsed = PyMem_Malloc(cap * sizeof(Parsed));
    int ok = parsed != NULL && expect(&c, '[');
    if (parsed == NULL) {
        PyErr_NoMemory();
    }
    if (ok && !expect(&c, ']')) {
        do {
            if (n == cap) {
                Parsed *grown = PyMem_Realloc(parsed, 2 * cap * sizeof(Parsed));
                if (grown == NULL) {
                    PyErr_NoMemory();
                    ok = 0;
                    break;
                }
                parsed = grown;
                cap *= 2;
            }
            ok = read_level(&c, &parsed[n]) == 0;
            n += ok;
        } while (ok && expect(&c, ','));
        ok = ok && expect(&c, ']');
    }
    if (ok) {
        skip_space(&c);
        ok = c.at == c.end;
    }
    Py_ssize_t offset = c.at - (const char *)view.buf;
    PyBuffer_Release(&view);
    if (!ok) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_ValueError,
                         "price levels must be a JSON array of [price, size, ...] arrays of "
                         "plain strings (at byte %zd)",
                         offset);
        }
        if (parsed != NULL) {
            release_parsed(parsed, n);
        }
        return NULL;
    }
    *count = n;
    return parsed;
}

/* A list of the parsed levels (new references; the parsed keep theirs). */
static PyObject *
parsed_list(const Parsed *parsed, Py_ssize_t n)
{
    PyObject *list = PyList_New(n);
    if (list == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(parsed[i].level);
        PyList_SET_ITEM(list, i, parsed[i].level);
    }
    return list;
}

/* ---- one side of a book --------------------------------------------------------------- */

/* Levels sit worst first, so that the changes, which nearly all land near the top, move few
 * entries; dropping the worst levels (truncate) only advances ``base``. The key is the price,
 * negated for bids: the lower the key, the better the level. */
typedef struct {
    double *key_store;
    PyObject **level_store;
    Py_ssize_t base;    /* index of the worst level in the stores */
    Py_ssize_t len;
    Py_ssize_t cap;
    double sign;        /* -1 for bids, 1 for asks */
    /* The best top_depth levels as one tuple, kept until a change reaches them. */
    PyObject *top;
    Py_ssize_t top_depth;
    /* Changes at keys up to here alter the cached top; infinite while the side is shallower. */
    double edge;
} Side;

#define KEYS(side) ((side)->key_store + (side)->base)
#define LEVELS(side) ((side)->level_store + (side)->base)
/* The i-th best level. */
#define BEST(side, i) (LEVELS(side)[(side)->len - 1 - (i)])

static void
side_init(Side *side, double sign)
{
    memset(side, 0, sizeof(*side));
    side->sign = sign;
    side->edge = INFINITY;
}

static void
side_forget_top(Side *side)
{
    Py_CLEAR(side->top);
}

static void
side_clear(Side *side)
{
    PyObject **levels = LEVELS(side);
    for (Py_ssize_t i = 0; i < side->len; i++) {
        Py_DECREF(levels[i]);
    }
    side->len = 0;
    side->base = 0;
    side_forget_top(side);
}

static void
side_free(Side *side)
{
    side_clear(side);
    PyMem_Free(side->key_store);
    PyMem_Free(side->level_store);
    side->key_store = NULL;
    side->level_store = NULL;
    side->cap = 0;
}

/* Room for ``wanted`` levels from ``base``: moves the levels to the start of the stores first,
 * and grows them when that is not enough. */
static int
side_reserve(Side *side, Py_ssize_t wanted)
{
    if (side->base + wanted <= side->cap) {
        return 0;
    }
    if (side->base > 0) {
        memmove(side->key_store, KEYS(side), side->len * sizeof(double));
        memmove(side->level_store, LEVELS(side), side->len * sizeof(PyObject *));
        side->base = 0;
    }
    if (wanted <= side->cap) {
        return 0;
    }
    Py_ssize_t cap = side->cap ? side->cap : 16;
    while (cap < wanted) {
        cap *= 2;
    }
    double *keys = PyMem_Realloc(side->key_store, cap * sizeof(double));
    if (keys == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    side->key_store = keys;
    PyObject **levels = PyMem_Realloc(side->level_store, cap * sizeof(PyObject *));
    if (levels == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    side->level_store = levels;
    side->cap = cap;
    return 0;
}

/* The first index (worst first) whose key is <= key. */
static Py_ssize_t
side_search(const Side *side, double key)
{
    const double *keys = KEYS(side);
    Py_ssize_t lo = 0, hi = side->len;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (keys[mid] > key) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return lo;
}

/* Set one validated level (stealing its reference); a size of zero removes the price. */
static int
side_set(Side *side, Parsed *parsed)
{
    double key = side->sign * parsed->price;
    PyObject *level = parsed->level;
    parsed->level = NULL;
    if (key <= side->edge) {
        side_forget_top(side);
    }
    Py_ssize_t at = side_search(side, key);
    int found = at < side->len && KEYS(side)[at] == key;
    if (parsed->size == 0.0) {
        Py_DECREF(level);
        if (found) {
            Py_DECREF(LEVELS(side)[at]);
            Py_ssize_t after = side->len - at - 1;
            memmove(KEYS(side) + at, KEYS(side) + at + 1, after * sizeof(double));
            memmove(LEVELS(side) + at, LEVELS(side) + at + 1, after * sizeof(PyObject *));
            side->len--;
        }
        return 0;
    }
    if (found) {
        Py_SETREF(LEVELS(side)[at], level);
        return 0;
    }
    if (side_reserve(side, side->len + 1) < 0) {
        Py_DECREF(level);
        return -1;
    }
    Py_ssize_t after = side->len - at;
    memmove(KEYS(side) + at + 1, KEYS(side) + at, after * sizeof(double));
    memmove(LEVELS(side) + at + 1, LEVELS(side) + at, after * sizeof(PyObject *));
    KEYS(side)[at] = key;
    LEVELS(side)[at] = level;
    side->len++;
    return 0;
}

typedef struct {
    double key;
    Py_ssize_t order;
} KeyOrder;

/* Worst first; among equal keys the later level first, so that it is the one kept. */
static int
compare_key_order(const void *a, const void *b)
{
    const KeyOrder *x = a, *y = b;
    if (x->key != y->key) {
        return x->key > y->key ? -1 : 1;
    }
    return x->order > y->order ? -1 : (x->order < y->order);
}

/* Replace the whole side with validated levels (stealing their references). Levels of size zero
 * are left out; where a price repeats, its last level wins. */
static int
side_replace(Side *side, Parsed *parsed, Py_ssize_t n)
{
    KeyOrder *order = PyMem_Malloc((n > 0 ? n : 1) * sizeof(KeyOrder));
    if (order == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    /* Exchanges send snapshots best first: read backwards, that is already worst first. */
    Py_ssize_t kept = 0;
    int sorted = 1;
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        if (parsed[i].size == 0.0) {
            continue;
        }
        double key = side->sign * parsed[i].price;
        if (kept > 0 && key >= order[kept - 1].key) {
            sorted = 0;
        }
        order[kept].key = key;
        order[kept].order = i;
        kept++;
    }
    if (!sorted) {
        qsort(order, kept, sizeof(KeyOrder), compare_key_order);
    }
    side_clear(side);
    if (side_reserve(side, kept) < 0) {
        PyMem_Free(order);
        return -1;
    }
    double *keys = KEYS(side);
    PyObject **levels = LEVELS(side);
    Py_ssize_t len = 0;
    for (Py_ssize_t i = 0; i < kept; i++) {
        if (len > 0 && keys[len - 1] == order[i].key) {
            continue;
        }
        keys[len] = order[i].key;
        levels[len] = parsed[order[i].order].level;
        parsed[order[i].order].level = NULL;
        len++;
    }
    side->len = len;
    PyMem_Free(order);
    return 0;
}

static void
side_truncate(Side *side, Py_ssize_t depth)
{
    if (depth < 0) {
        depth = 0;
    }
    if (side->len > depth) {
        Py_ssize_t dropped = side->len - depth;
        PyObject **levels = LEVELS(side);
        for (Py_ssize_t i = 0; i < dropped; i++) {
            Py_DECREF(levels[i]);
        }
        side->base += dropped;
        side->len = depth;
    }
    if (depth < side->top_depth) {
        side_forget_top(side);
    }
}

static PyObject *
side_list(const Side *side, Py_ssize_t depth)
{
    Py_ssize_t n = depth < 0 || depth > side->len ? side->len : depth;
    PyObject *list = PyList_New(n);
    if (list == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *level = BEST(side, i);
        Py_INCREF(level);
        PyList_SET_ITEM(list, i, level);
    }
    return list;
}

static PyObject *
side_top(Side *side, Py_ssize_t depth)
{
    if (depth < 0) {
        PyErr_SetString(PyExc_ValueError, "depth must not be negative");
        return NULL;
    }
    if (side->top == NULL || side->top_depth != depth) {
        Py_ssize_t n = depth > side->len ? side->len : depth;
        PyObject *top = PyTuple_New(n);
        if (top == NULL) {
            return NULL;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *level = BEST(side, i);
            Py_INCREF(level);
            PyTuple_SET_ITEM(top, i, level);
        }
        Py_XSETREF(side->top, top);
        side->top_depth = depth;
        side->edge = n == depth && n > 0 ? KEYS(side)[side->len - n] : INFINITY;
    }
    Py_INCREF(side->top);
    return side->top;
}

static PyObject *
side_best(const Side *side)
{
    if (side->len == 0) {
        Py_RETURN_NONE;
    }
    PyObject *level = BEST(side, 0);
    Py_INCREF(level);
    return level;
}

static double
side_best_key(const Side *side)
{
    return KEYS(side)[side->len - 1];
}

/* ---- OKX's book checksum ------------------------------------------------------------ */

/* CRC32 (IEEE, as zlib) eight bytes at a step: table k holds the CRC of a byte followed by k
 * zero bytes. The checksummed text of a book is ~700 bytes; a byte at a time cost more than the
 * rest of the checksum. */
static uint32_t crc_tables[8][256];

static void
crc_table_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) {
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        crc_tables[0][n] = c;
    }
    for (int k = 1; k < 8; k++) {
        for (uint32_t n = 0; n < 256; n++) {
            uint32_t previous = crc_tables[k - 1][n];
            crc_tables[k][n] = (previous >> 8) ^ crc_tables[0][previous & 0xFF];
        }
    }
}

static uint32_t
little_endian_32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t
crc32_of(const char *data, Py_ssize_t n)
{
    const unsigned char *p = (const unsigned char *)data;
    uint32_t crc = 0xFFFFFFFFu;
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t one = little_endian_32(p) ^ crc, two = little_endian_32(p + 4);
        crc = crc_tables[7][one & 0xFF] ^ crc_tables[6][(one >> 8) & 0xFF] ^
              crc_tables[5][(one >> 16) & 0xFF] ^ crc_tables[4][one >> 24] ^
              crc_tables[3][two & 0xFF] ^ crc_tables[2][(two >> 8) & 0xFF] ^
              crc_tables[1][(two >> 16) & 0xFF] ^ crc_tables[0][two >> 24];
    }
    for (; n > 0; p++, n--) {
        crc = crc_tables[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
    }
    return ~crc;
}

/* The text a checksum covers, gathered in one buffer: on the stack while it fits. */
typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
    char small[2048];
} Text;

/* Room for ``extra`` more bytes. */
static int
text_reserve(Text *text, Py_ssize_t extra)
{
    if (text->len + extra <= text->cap) {
        return 0;
    }
    Py_ssize_t cap = 2 * (text->len + extra);
    char *grown = text->data == text->small ? PyMem_Malloc(cap) : PyMem_Realloc(text->data, cap);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (text->data == text->small) {
        memcpy(grown, text->small, text->len);
    }
    text->data = grown;
    text->cap = cap;
    return 0;
}

/* A level's price and size added to the text, each after a ':' unless it is the very first. */
static int
text_add_level(Text *text, PyObject *level)
{
    PyObject *price, *size;
    if (!level_parts(level, &price, &size)) {
        PyErr_Format(PyExc_ValueError, "not a price level: %R", level);
        return -1;
    }
    const char *price_text, *size_text;
    Py_ssize_t n_price, n_size;
    if (text_of(price, &price_text, &n_price) < 0 || text_of(size, &size_text, &n_size) < 0 ||
        text_reserve(text, n_price + n_size + 2) < 0) {
        return -1;
    }
    char *at = text->data + text->len;
    if (text->len > 0) {
        *at++ = ':';
    }
    memcpy(at, price_text, n_price);
    at += n_price;
    *at++ = ':';
    memcpy(at, size_text, n_size);
    text->len = at + n_size - text->data;
    return 0;
}

#define OKX_CHECKSUM_DEPTH 25

/* OKX's checksum over levels given best first: the best 25 a side, interleaved bid, ask, bid..
 * (the longer side's rest at the end), each level's price and size, all joined by ':'. */
static int
okx_crc(PyObject **bid, Py_ssize_t n_bids, PyObject **ask, Py_ssize_t n_asks, int32_t *out)
{
    n_bids = n_bids > OKX_CHECKSUM_DEPTH ? OKX_CHECKSUM_DEPTH : n_bids;
    n_asks = n_asks > OKX_CHECKSUM_DEPTH ? OKX_CHECKSUM_DEPTH : n_asks;
    /* Set field by field: an initializer would zero the whole stack buffer first. */
    Text text;
    text.data = text.small;
    text.len = 0;
    text.cap = sizeof(text.small);
    int failed = 0;
    Py_ssize_t most = n_bids > n_asks ? n_bids : n_asks;
    for (Py_ssize_t i = 0; i < most && !failed; i++) {
        failed = (i < n_bids && text_add_level(&text, bid[i]) < 0) ||
                 (i < n_asks && text_add_level(&text, ask[i]) < 0);
    }
    if (!failed) {
        *out = (int32_t)crc32_of(text.data, text.len);
    }
    if (text.data != text.small) {
        PyMem_Free(text.data);
    }
    return failed ? -1 : 0;
}

/* ---- OrderBook ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *instrument;
    Side bids;
    Side asks;
    /* okx_checksum's last result and the top tuples it was computed over: while side_top
     * returns the same two, nothing it covers has changed. */
    PyObject *summed_bids;
    PyObject *summed_asks;
    int32_t checksum;
} OrderBook;

static int
book_init(OrderBook *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"instrument", NULL};
    PyObject *instrument;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "U:OrderBook", names, &instrument)) {
        return -1;
    }
    Py_INCREF(instrument);
    Py_XSETREF(self->instrument, instrument);
    side_free(&self->bids);
    side_free(&self->asks);
    side_init(&self->bids, -1.0);
    side_init(&self->asks, 1.0);
    Py_CLEAR(self->summed_bids);
    Py_CLEAR(self->summed_asks);
    return 0;
}

static PyObject *
book_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    OrderBook *self = (OrderBook *)type->tp_alloc(type, 0);
    if (self != NULL) {
        side_init(&self->bids, -1.0);
        side_init(&self->asks, 1.0);
    }
    return (PyObject *)self;
}

static void
book_dealloc(OrderBook *self)
{
    side_free(&self->bids);
    side_free(&self->asks);
    Py_XDECREF(self->summed_bids);
    Py_XDECREF(self->summed_asks);
    Py_XDECREF(self->instrument);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
book_repr(OrderBook *self)
{
    return PyUnicode_FromFormat("OrderBook(%R, bids=%zd, asks=%zd)", self->instrument,
                                self->bids.len, self->asks.len);
}

static int
book_bool(OrderBook *self)
{
    return self->bids.len > 0 || self->asks.len > 0;
}

static PyObject *
book_set_level(Side *side, PyObject *const *args, Py_ssize_t nargs, const char *name)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes a price and a size", name);
        return NULL;
    }
    Parsed parsed;
    PyObject *pair = PyTuple_Pack(2, args[0], args[1]);
    if (pair == NULL) {
        return NULL;
    }
    int failed = parse_level(pair, &parsed);
    Py_DECREF(pair);
    if (failed < 0 || side_set(side, &parsed) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
book_set_bid(OrderBook *self, PyObject *const *args, Py_ssize_t nargs)
{
    return book_set_level(&self->bids, args, nargs, "set_bid");
}

static PyObject *
book_set_ask(OrderBook *self, PyObject *const *args, Py_ssize_t nargs)
{
    return book_set_level(&self->asks, args, nargs, "set_ask");
}

/* Reads every level of one side's argument, validated, or NULL with ValueError set. */
typedef Parsed *(*LevelReader)(PyObject *levels, Py_ssize_t *count);

/* Both sides' levels (the call's two arguments) read and validated before either side changes. */
static int
parse_both(PyObject *const *args, Py_ssize_t nargs, const char *method, LevelReader read,
           Parsed **bid_levels, Py_ssize_t *n_bids, Parsed **ask_levels, Py_ssize_t *n_asks)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes bids and asks", method);
        return -1;
    }
    *bid_levels = read(args[0], n_bids);
    if (*bid_levels == NULL) {
        return -1;
    }
    *ask_levels = read(args[1], n_asks);
    if (*ask_levels == NULL) {
        release_parsed(*bid_levels, *n_bids);
        return -1;
    }
    return 0;
}

/* Set every parsed level, then release them all; -1 (out of memory) leaves the rest unset. */
static int
apply_parsed(OrderBook *self, Parsed *bids, Py_ssize_t n_bids, Parsed *asks, Py_ssize_t n_asks)
{
    int failed = 0;
    for (Py_ssize_t i = 0; i < n_bids && !failed; i++) {
        failed = side_set(&self->bids, &bids[i]) < 0;
    }
    for (Py_ssize_t i = 0; i < n_asks && !failed; i++) {
        failed = side_set(&self->asks, &asks[i]) < 0;
    }
    release_parsed(bids, n_bids);
    release_parsed(asks, n_asks);
    return failed ? -1 : 0;
}

static PyObject *
book_apply(OrderBook *self, PyObject *const *args, Py_ssize_t nargs)
{
    Parsed *bids, *asks;
    Py_ssize_t n_bids, n_asks;
    if (parse_both(args, nargs, "apply", parse_levels, &bids, &n_bids, &asks, &n_asks) < 0 ||
        apply_parsed(self, bids, n_bids, asks, n_asks) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
book_apply_json(OrderBook *self, PyObject *const *args, Py_ssize_t nargs)
{
    Parsed *bids, *asks;
    Py_ssize_t n_bids, n_asks;
    if (parse_both(args, nargs, "apply_json", parse_json_levels, &bids, &n_bids, &asks,
                   &n_asks) < 0) {
        return NULL;
    }
    PyObject *changed = PyTuple_New(2);
    PyObject *bid_list = changed ? parsed_list(bids, n_bids) : NULL;
    PyObject *ask_list = bid_list ? parsed_list(asks, n_asks) : NULL;
    if (ask_list == NULL) {
        Py_XDECREF(bid_list);
        Py_XDECREF(changed);
        release_parsed(bids, n_bids);
        release_parsed(asks, n_asks);
        return NULL;
    }
    PyTuple_SET_ITEM(changed, 0, bid_list);
    PyTuple_SET_ITEM(changed, 1, ask_list);
    if (apply_parsed(self, bids, n_bids, asks, n_asks) < 0) {
        Py_DECREF(changed);
        return NULL;
    }
    return changed;
}

static PyObject *
book_replace_with(OrderBook *self, PyObject *const *args, Py_ssize_t nargs, const char *method,
                  LevelReader read)
{
    Parsed *bids, *asks;
    Py_ssize_t n_bids, n_asks;
    if (parse_both(args, nargs, method, read, &bids, &n_bids, &asks, &n_asks) < 0) {
        return NULL;
    }
    int failed = side_replace(&self->bids, bids, n_bids) < 0 ||
                 side_replace(&self->asks, asks, n_asks) < 0;
    release_parsed(bids, n_bids);
    release_parsed(asks, n_asks);
    if (failed) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
book_replace(OrderBook *self, PyObject *const *args, Py_ssize_t nargs)
{
    return book_replace_with(self, args, nargs, "replace", parse_levels);
}

static PyObject *
book_replace_json(OrderBook *self, PyObject *const *args, Py_ssize_t nargs)
{
    return book_replace_with(self, args, nargs, "replace_json", parse_json_levels);
}

static PyObject *
book_clear(OrderBook *self, PyObject *Py_UNUSED(ignored))
{
    side_clear(&self->bids);
    side_clear(&self->asks);
    Py_CLEAR(self->summed_bids);
    Py_CLEAR(self->summed_asks);
    Py_RETURN_NONE;
}

static int
depth_arg(PyObject *arg, Py_ssize_t *depth)
{
    *depth = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (*depth == -1 && PyErr_Occurred()) {
        return -1;
    }
    return 0;
}

static PyObject *
book_truncate(OrderBook *self, PyObject *arg)
{
    Py_ssize_t depth;
    if (depth_arg(arg, &depth) < 0) {
        return NULL;
    }
    side_truncate(&self->bids, depth);
    side_truncate(&self->asks, depth);
    Py_RETURN_NONE;
}

static PyObject *
book_best_bid(OrderBook *self, PyObject *Py_UNUSED(ignored))
{
    return side_best(&self->bids);
}

static PyObject *
book_best_ask(OrderBook *self, PyObject *Py_UNUSED(ignored))
{
    return side_best(&self->asks);
}

static PyObject *
book_is_crossed(OrderBook *self, PyObject *Py_UNUSED(ignored))
{
    if (self->bids.len == 0 || self->asks.len == 0) {
        Py_RETURN_FALSE;
    }
    return PyBool_FromLong(-side_best_key(&self->bids) >= side_best_key(&self->asks));
}

static PyObject *
book_side_levels(Side *side, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t depth = -1;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "takes at most a depth");
        return NULL;
    }
    if (nargs == 1 && args[0] != Py_None && depth_arg(args[0], &depth) < 0) {
        return NULL;
    }
    return side_list(side, depth);
}

static PyObject *
book_bids(OrderBook *self, PyObject *const *args, Py_ssize_t nargs)
{
    return book_side_levels(&self->bids, args, nargs);
}

static PyObject *
book_asks(OrderBook *self, PyObject *const *args, Py_ssize_t nargs)
{
    return book_side_levels(&self->asks, args, nargs);
}

/* side_top for a depth given from Python. */
static PyObject *
top_of(Side *side, PyObject *arg)
{
    Py_ssize_t depth;
    if (depth_arg(arg, &depth) < 0) {
        return NULL;
    }
    return side_top(side, depth);
}

static PyObject *
book_top_bids(OrderBook *self, PyObject *arg)
{
    return top_of(&self->bids, arg);
}

static PyObject *
book_top_asks(OrderBook *self, PyObject *arg)
{
    return top_of(&self->asks, arg);
}

static PyObject *
book_okx_checksum(OrderBook *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *bids = side_top(&self->bids, OKX_CHECKSUM_DEPTH);
    if (bids == NULL) {
        return NULL;
    }
    PyObject *asks = side_top(&self->asks, OKX_CHECKSUM_DEPTH);
    if (asks == NULL) {
        Py_DECREF(bids);
        return NULL;
    }
    if (bids != self->summed_bids || asks != self->summed_asks) {
        int32_t crc;
        if (okx_crc(&PyTuple_GET_ITEM(bids, 0), PyTuple_GET_SIZE(bids), &PyTuple_GET_ITEM(asks, 0),
                    PyTuple_GET_SIZE(asks), &crc) < 0) {
            Py_DECREF(bids);
            Py_DECREF(asks);
            return NULL;
        }
        self->checksum = crc;
        Py_XSETREF(self->summed_bids, bids);
        Py_XSETREF(self->summed_asks, asks);
    }
    else {
        Py_DECREF(bids);
        Py_DECREF(asks);
    }
    return PyLong_FromLong((long)self->checksum);
}

static PyObject *
book_depth(OrderBook *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("(nn)", self->bids.len, self->asks.len);
}

static PyMethodDef book_methods[] = {
    {"set_bid", (PyCFunction)(void (*)(void))book_set_bid, METH_FASTCALL,
     "set_bid(price, size): set one bid level; a size of zero removes it."},
    {"set_ask", (PyCFunction)(void (*)(void))book_set_ask, METH_FASTCALL,
     "set_ask(price, size): set one ask level; a size of zero removes it."},
    {"apply", (PyCFunction)(void (*)(void))book_apply, METH_FASTCALL,
     "apply(bids, asks): apply changed levels; a size of zero removes the level.\n"
     "Every level is checked first: on ValueError the book is unchanged."},
    {"replace", (PyCFunction)(void (*)(void))book_replace, METH_FASTCALL,
     "replace(bids, asks): the book becomes these levels (a snapshot); zero sizes are left out."},
    {"apply_json", (PyCFunction)(void (*)(void))book_apply_json, METH_FASTCALL,
     "apply_json(bids, asks): apply changed levels read from the JSON text of two level arrays\n"
     "([[\"price\", \"size\", ...], ...]); returns them as (bids, asks) lists of (price, size).\n"
     "Every level is read and checked first: on ValueError the book is unchanged."},
    {"replace_json", (PyCFunction)(void (*)(void))book_replace_json, METH_FASTCALL,
     "replace_json(bids, asks): the book becomes the levels of two JSON level arrays."},
    {"clear", (PyCFunction)book_clear, METH_NOARGS, "Remove every level."},
    {"truncate", (PyCFunction)book_truncate, METH_O,
     "truncate(depth): keep only the best depth levels per side (fixed-depth venues)."},
    {"best_bid", (PyCFunction)book_best_bid, METH_NOARGS, "The best bid level, or None."},
    {"best_ask", (PyCFunction)book_best_ask, METH_NOARGS, "The best ask level, or None."},
    {"is_crossed", (PyCFunction)book_is_crossed, METH_NOARGS,
     "Whether the best bid is at or above the best ask."},
    {"bids", (PyCFunction)(void (*)(void))book_bids, METH_FASTCALL,
     "bids(depth=None): bid levels, best first."},
    {"asks", (PyCFunction)(void (*)(void))book_asks, METH_FASTCALL,
     "asks(depth=None): ask levels, best first."},
    {"top_bids", (PyCFunction)book_top_bids, METH_O,
     "top_bids(depth): the best depth bids as a tuple, the same object until a change reaches "
     "them."},
    {"top_asks", (PyCFunction)book_top_asks, METH_O,
     "top_asks(depth): the best depth asks as a tuple, the same object until a change reaches "
     "them."},
    {"okx_checksum", (PyCFunction)book_okx_checksum, METH_NOARGS,
     "okx_checksum(): okx_checksum over this book's best levels, recomputed only when a change\n"
     "reached them."},
    {"depth", (PyCFunction)book_depth, METH_NOARGS, "(bid levels, ask levels)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef book_members[] = {
    {"instrument", T_OBJECT_EX, offsetof(OrderBook, instrument), READONLY, "Instrument id."},
    {NULL, 0, 0, 0, NULL},
};

static PyNumberMethods book_as_number = {
    .nb_bool = (inquiry)book_bool,
};

static PyTypeObject OrderBookType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "actors._book.OrderBook",
    .tp_doc = "OrderBook(instrument): an L2 book keeping levels as the exchange spelled them.",
    .tp_basicsize = sizeof(OrderBook),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = book_new,
    .tp_init = (initproc)book_init,
    .tp_dealloc = (destructor)book_dealloc,
    .tp_repr = (reprfunc)book_repr,
    .tp_as_number = &book_as_number,
    .tp_methods = book_methods,
    .tp_members = book_members,
};

/* ---- module functions ----------------------------------------------------------------- */

static PyObject *
checked_levels(PyObject *module, PyObject *levels)
{
    Py_ssize_t n;
    Parsed *parsed = parse_levels(levels, &n);
    if (parsed == NULL) {
        return NULL;
    }
    PyObject *list = PyList_New(n);
    if (list == NULL) {
        release_parsed(parsed, n);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyList_SET_ITEM(list, i, parsed[i].level);
        parsed[i].level = NULL;
    }
    release_parsed(parsed, n);
    return list;
}

static PyObject *
okx_checksum(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "okx_checksum() takes bids and asks");
        return NULL;
    }
    PyObject *bids = PySequence_Fast(args[0], "bids must be a sequence");
    if (bids == NULL) {
        return NULL;
    }
    PyObject *asks = PySequence_Fast(args[1], "asks must be a sequence");
    if (asks == NULL) {
        Py_DECREF(bids);
        return NULL;
    }
    int32_t crc;
    int failed = okx_crc(PySequence_Fast_ITEMS(bids), PySequence_Fast_GET_SIZE(bids),
                         PySequence_Fast_ITEMS(asks), PySequence_Fast_GET_SIZE(asks), &crc);
    Py_DECREF(bids);
    Py_DECREF(asks);
    if (failed) {
        return NULL;
    }
    return PyLong_FromLong((long)crc);
}

static PyMethodDef module_methods[] = {
    {"checked_levels", (PyCFunction)checked_levels, METH_O,
     "checked_levels(levels): [(price, size), ...] from sequences whose first two items are a\n"
     "price and a size, every number checked (positive prices, non-negative sizes).\n"
     "Raises ValueError naming the first bad level."},
    {"okx_checksum", (PyCFunction)(void (*)(void))okx_checksum, METH_FASTCALL,
     "okx_checksum(bids, asks): OKX's CRC32 (signed) over the best 25 levels per side, best\n"
     "first, in the exchange's spelling: bid:size:ask:size:... interleaved, then the longer\n"
     "side's rest."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef book_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "actors._book",
    .m_doc = "The feed's per-level hot path, compiled; see actors/book.py.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__book(void)
{
    crc_table_init();
    if (PyType_Ready(&OrderBookType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&book_module);
    if (module == NULL) {
        return NULL;
    }
    PyObject *exported =
        Py_BuildValue("[sss]", "OrderBook", "checked_levels", "okx_checksum");
    if (PyModule_AddObjectRef(module, "OrderBook", (PyObject *)&OrderBookType) < 0 ||
        exported == NULL || PyModule_AddObject(module, "__all__", exported) < 0) {
        Py_XDECREF(exported);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
