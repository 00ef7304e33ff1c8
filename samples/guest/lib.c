/* The test guest: serial output, memory, time, command line, random numbers, sorting. */
#include "guest.h"

#define COM1 0x3F8
#define COM1_LSR (COM1 + 5)
#define LSR_THR_EMPTY 0x20

/* String instructions: one emulated instruction for the whole run where each iteration is cheap. The emulator
   here pays per iteration, so whole quadwords are moved whenever the length allows it. */
void *memset(void *dst, int c, size_t n)
{
    void *d = dst;
    if ((n & 7) == 0) {
        u64 q = n / 8, v = (u8)c * 0x0101010101010101ul;
        __asm__ volatile("rep stosq" : "+D"(d), "+c"(q) : "a"(v) : "memory");
    } else {
        __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    }
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    void *d = dst;
    if ((n & 7) == 0) {
        u64 q = n / 8;
        __asm__ volatile("rep movsq" : "+D"(d), "+S"(src), "+c"(q) : : "memory");
    } else {
        __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
    }
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const u8 *x = a, *y = b;
    if (n == 0)
        return 0;
    if ((n & 7) == 0) {
        /* repe cmpsq stops after the first differing quadword; the bytes of that one decide. */
        u64 q = n / 8;
        __asm__ volatile("repe cmpsq" : "+S"(x), "+D"(y), "+c"(q) : : "memory", "cc");
        x -= 8;
        y -= 8;
        for (int i = 0; i < 8; i++)
            if (x[i] != y[i])
                return x[i] < y[i] ? -1 : 1;
        return 0;
    }
    __asm__ volatile("repe cmpsb" : "+S"(x), "+D"(y), "+c"(n) : : "memory", "cc");
    if (x[-1] == y[-1])
        return 0;
    return x[-1] < y[-1] ? -1 : 1;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

bool streq(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

static void serial_putc(char c)
{
    /* The contract's line status always reads "transmitter empty"; the bound keeps a real UART honest. */
    for (int i = 0; i < 1000 && !(inb(COM1_LSR) & LSR_THR_EMPTY); i++)
        ;
    outb(COM1, (u8)c);
}

static char *put_u64(char *p, char *end, u64 v, unsigned base, int width, char pad)
{
    char tmp[24];
    int n = 0;
    do {
        unsigned d = v % base;
        tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v);
    while (width > n && p < end) {
        *p++ = pad;
        width--;
    }
    while (n && p < end)
        *p++ = tmp[--n];
    return p;
}

/* A small printf: %s %c %d %u %x with optional zero pad / width and l / ll modifiers. */
void print(const char *fmt, ...)
{
    char buf[256];
    char *p = buf, *end = buf + sizeof buf - 1;
    __builtin_va_list ap;
    __builtin_va_start(ap, fmt);
    for (; *fmt && p < end; fmt++) {
        if (*fmt != '%') {
            *p++ = *fmt;
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0, longs = 0;
        if (*fmt == '0')
            pad = '0';
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') {
            longs++;
            fmt++;
        }
        switch (*fmt) {
        case 's': {
            const char *s = __builtin_va_arg(ap, const char *);
            while (*s && p < end)
                *p++ = *s++;
            break;
        }
        case 'c':
            *p++ = (char)__builtin_va_arg(ap, int);
            break;
        case 'd': {
            i64 v = longs ? __builtin_va_arg(ap, i64) : __builtin_va_arg(ap, int);
            if (v < 0) {
                *p++ = '-';
                v = -v;
            }
            p = put_u64(p, end, (u64)v, 10, width, pad);
            break;
        }
        case 'u':
        case 'x': {
            u64 v = longs ? __builtin_va_arg(ap, u64) : __builtin_va_arg(ap, unsigned);
            p = put_u64(p, end, v, *fmt == 'x' ? 16 : 10, width, pad);
            break;
        }
        case '%':
            *p++ = '%';
            break;
        default:
            *p++ = '?';
            break;
        }
        if (!*fmt)
            break;
    }
    __builtin_va_end(ap);
    for (char *q = buf; q < p; q++) {
        if (*q == '\n')
            serial_putc('\r');
        serial_putc(*q);
    }
}

extern char _end[];
static u64 heap_next, heap_limit;

void heap_init(u64 memory_size)
{
    heap_next = ((u64)_end + 4095) & ~4095ul;
    heap_limit = memory_size;
}

u64 heap_free_bytes(void) { return heap_limit > heap_next ? heap_limit - heap_next : 0; }

void *alloc(size_t size, size_t align)
{
    u64 p = (heap_next + align - 1) & ~(align - 1);
    if (p + size > heap_limit || p + size < p)
        return NULL;
    heap_next = p + size;
    memset((void *)p, 0, size);
    return (void *)p;
}

u64 tsc_khz;

u64 ticks_to_us(u64 ticks) { return ticks * 1000 / tsc_khz; }
u64 ticks_to_ns(u64 ticks) { return ticks * 1000000 / tsc_khz; }
u64 us_to_ticks(u64 us) { return us * tsc_khz / 1000; }
u64 rate_per_s(u64 count, u64 ticks) { return ticks ? count * tsc_khz * 1000 / ticks : 0; }

static const char *cmdline_text = "";

void cmdline_init(const char *cmdline) { cmdline_text = cmdline; }

bool cmdline_get(const char *key, char *value, size_t size)
{
    size_t klen = strlen(key);
    const char *s = cmdline_text;
    while (*s) {
        while (*s == ' ')
            s++;
        const char *word = s;
        while (*s && *s != ' ')
            s++;
        if ((size_t)(s - word) > klen && word[klen] == '=' && memcmp(word, key, klen) == 0) {
            size_t n = (size_t)(s - word) - klen - 1;
            if (n >= size)
                n = size - 1;
            memcpy(value, word + klen + 1, n);
            value[n] = 0;
            return true;
        }
    }
    return false;
}

u64 cmdline_u64(const char *key, u64 fallback)
{
    char v[32];
    if (!cmdline_get(key, v, sizeof v) || !v[0])
        return fallback;
    u64 n = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return fallback;
        n = n * 10 + (u64)(*p - '0');
    }
    return n;
}

bool list_contains(const char *list, const char *item)
{
    size_t n = strlen(item);
    for (const char *s = list; *s;) {
        const char *e = s;
        while (*e && *e != ',')
            e++;
        if ((size_t)(e - s) == n && memcmp(s, item, n) == 0)
            return true;
        s = *e ? e + 1 : e;
    }
    return false;
}

bool parse_ipv4(const char *s, u32 *ip)
{
    u32 v = 0;
    for (int part = 0; part < 4; part++) {
        u32 octet = 0;
        int digits = 0;
        while (*s >= '0' && *s <= '9' && digits < 4) {
            octet = octet * 10 + (u32)(*s++ - '0');
            digits++;
        }
        if (!digits || octet > 255)
            return false;
        v = (v << 8) | octet;
        if (part < 3 && *s++ != '.')
            return false;
    }
    if (*s)
        return false;
    *ip = v; /* host order: 10.0.2.15 is 0x0a00020f */
    return true;
}

static u64 random_state = 0x9e3779b97f4a7c15ul;

void random_seed(u64 seed) { random_state = seed ? seed : 0x9e3779b97f4a7c15ul; }

u64 random_next(void)
{
    u64 x = random_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    random_state = x;
    return x * 0x2545f4914f6cdd1dul;
}

static void sift_down(u64 *a, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n)
            return;
        if (child + 1 < n && a[child + 1] > a[child])
            child++;
        if (a[root] >= a[child])
            return;
        u64 t = a[root];
        a[root] = a[child];
        a[child] = t;
        root = child;
    }
}

void sort_u64(u64 *a, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(a, i, n);
    for (size_t end = n; end-- > 1;) {
        u64 t = a[0];
        a[0] = a[end];
        a[end] = t;
        sift_down(a, 0, end);
    }
}
