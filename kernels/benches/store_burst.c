/*
 * What a burst of vector stores costs a core saturated with FMAs, and what staggering a tile's
 * stores wins back: the measurements behind `STORE_BURST` and `STAGGER` in
 * `kernels/src/gemm/microkernel.rs` (AVX2 + FMA; run on a Zen 3).
 *
 *   gcc -O3 -march=x86-64-v3 kernels/benches/store_burst.c -o /tmp/store_burst
 *   /tmp/store_burst
 *
 * Part 1: a loop of 12 independent FMA chains (the peak), then the same loop with its
 * accumulators stored -- 12, 10 or 8 of them together after every 32 steps, or all 12 in groups
 * of 6 every 16 steps, 4 every 8 or 2 every 4. Part 2: 16 members' products of 78 x 32
 * rows by a packed 32 x 16 panel (f32, k = 32, operands in L2), in six-row two-vector tiles as
 * flock's AVX2 microkernel sweeps them: plain (twelve stores after each tile's last step) and
 * staggered (six stores, then the next tile's upper rows take STAGGER steps, then the other
 * six), each element still one chain of FMAs over k in order (the program checks the bits).
 * Every figure is the fastest of many alternated runs: on a shared host only same-run ratios
 * mean anything.
 */
#include <immintrin.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef __m256 V;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* ---- Part 1: bursts of stores beside 12 FMA chains ---- */

static float sink[4096] __attribute__((aligned(64)));

#define CHAINS                                                                                   \
    V a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);                                  \
    __asm__("" : "+x"(a), "+x"(b));                                                              \
    V c0 = _mm256_set1_ps(1), c1 = _mm256_set1_ps(2), c2 = _mm256_set1_ps(3);                    \
    V c3 = _mm256_set1_ps(4), c4 = _mm256_set1_ps(5), c5 = _mm256_set1_ps(6);                    \
    V c6 = _mm256_set1_ps(7), c7 = _mm256_set1_ps(8), c8 = _mm256_set1_ps(9);                    \
    V c9 = _mm256_set1_ps(10), c10 = _mm256_set1_ps(11), c11 = _mm256_set1_ps(12);
#define F(x) x = _mm256_fmadd_ps(x, a, b);
#define STEP F(c0) F(c1) F(c2) F(c3) F(c4) F(c5) F(c6) F(c7) F(c8) F(c9) F(c10) F(c11)
#define STEPS(n) for (int k = 0; k < (n); k++) { STEP }
#define S(i, x) _mm256_store_ps(q + 8 * (i), x);
#define KEEP                                                                                     \
    V o = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),             \
                        _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));             \
    o = _mm256_add_ps(o, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));         \
    _mm256_store_ps(sink + 4000, o);
/* One function per pattern: `BLOCK` is a block of 24 or 32 steps and its stores. */
#define PATTERN(NAME, STEPS_PER_BLOCK, BLOCK)                                                    \
    __attribute__((noinline)) static void NAME(long steps) {                                     \
        CHAINS                                                                                   \
        for (long s = 0; s < steps / (STEPS_PER_BLOCK); s++) {                                   \
            float *q = sink + (s & 7) * 96;                                                      \
            (void)q;                                                                             \
            BLOCK                                                                                \
        }                                                                                        \
        KEEP                                                                                     \
    }
PATTERN(no_stores, 32, STEPS(32))
PATTERN(all_12, 32,
        STEPS(32) S(0, c0) S(1, c1) S(2, c2) S(3, c3) S(4, c4) S(5, c5) S(6, c6) S(7, c7)
            S(8, c8) S(9, c9) S(10, c10) S(11, c11))
PATTERN(ten, 32,
        STEPS(32) S(0, c0) S(1, c1) S(2, c2) S(3, c3) S(4, c4) S(5, c5) S(6, c6) S(7, c7)
            S(8, c8) S(9, c9))
PATTERN(eight, 32,
        STEPS(32) S(0, c0) S(1, c1) S(2, c2) S(3, c3) S(4, c4) S(5, c5) S(6, c6) S(7, c7))
PATTERN(six_every_16, 32,
        STEPS(16) S(0, c0) S(1, c1) S(2, c2) S(3, c3) S(4, c4) S(5, c5)
        STEPS(16) S(6, c6) S(7, c7) S(8, c8) S(9, c9) S(10, c10) S(11, c11))
PATTERN(four_every_8, 24,
        STEPS(8) S(0, c0) S(1, c1) S(2, c2) S(3, c3)
        STEPS(8) S(4, c4) S(5, c5) S(6, c6) S(7, c7)
        STEPS(8) S(8, c8) S(9, c9) S(10, c10) S(11, c11))
PATTERN(two_every_4, 24,
        STEPS(4) S(0, c0) S(1, c1) STEPS(4) S(2, c2) S(3, c3) STEPS(4) S(4, c4) S(5, c5)
        STEPS(4) S(6, c6) S(7, c7) STEPS(4) S(8, c8) S(9, c9) STEPS(4) S(10, c10) S(11, c11))

static void part1(void) {
    void (*f[7])(long) = {no_stores, all_12, ten, eight, six_every_16, four_every_8, two_every_4};
    const char *names[] = {"no stores", "12 after 32 steps", "10 after 32 steps",
                           "8 after 32 steps", "6 every 16 steps", "4 every 8 steps",
                           "2 every 4 steps"};
    double best[7];
    for (int v = 0; v < 7; v++) best[v] = 1e9;
    long steps = 19200; /* a multiple of every block */
    for (int trial = 0; trial < 2000; trial++)
        for (int v = 0; v < 7; v++) {
            double t0 = now();
            f[v](steps);
            double dt = now() - t0;
            if (dt < best[v]) best[v] = dt;
        }
    printf("12 FMA chains; their accumulators stored:\n");
    for (int v = 0; v < 7; v++)
        printf("  %-18s %6.1f GFLOP/s (%.3f of no stores)\n", names[v],
               steps * 12 * 16 / best[v] / 1e9, best[0] / best[v]);
}

/* ---- Part 2: six-row tiles, plain and staggered ---- */

#define K 32
#define ROWS 78
#define TILES (ROWS / 6)
#define E 16
static float A[E * ROWS * K] __attribute__((aligned(64)));
static float B[E * K * 16] __attribute__((aligned(64)));
static float C[E * ROWS * 32] __attribute__((aligned(64)));
static float C_plain[E * ROWS * 32];

/* One k step for rows lo..hi of the tile whose A starts at `a` (rows K apart, C rows 32 apart). */
static inline __attribute__((always_inline)) void step(V acc[6][2], const float *a, const float *b,
                                                       int p, int lo, int hi) {
    V b0 = _mm256_loadu_ps(b + p * 16), b1 = _mm256_loadu_ps(b + p * 16 + 8);
    for (int i = lo; i < hi; i++) {
        V x = _mm256_broadcast_ss(a + i * K + p);
        acc[i][0] = _mm256_fmadd_ps(x, b0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(x, b1, acc[i][1]);
    }
}

static inline __attribute__((always_inline)) void store(V acc[6][2], float *c, int lo, int hi) {
    for (int i = lo; i < hi; i++) {
        _mm256_storeu_ps(c + i * 32, acc[i][0]);
        _mm256_storeu_ps(c + i * 32 + 8, acc[i][1]);
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    }
}

/* `early` = 0: plain; otherwise staggered by `early` steps. */
static inline __attribute__((always_inline)) void panel(const float *a, const float *b, float *c,
                                                        int early) {
    V acc[6][2];
    for (int i = 0; i < 6; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    int upper = early ? 3 : 6;
    for (int p = 0; p < early; p++) step(acc, a, b, p, 0, upper);
    for (int t = 0; t < TILES; t++) {
        for (int p = 0; p < early; p++) step(acc, a, b, p, upper, 6);
        for (int p = early; p < K; p++) step(acc, a, b, p, 0, 6);
        store(acc, c, 0, upper);
        a += 6 * K;
        if (t + 1 < TILES)
            for (int p = 0; p < early; p++) step(acc, a, b, p, 0, upper);
        store(acc, c, upper, 6);
        c += 6 * 32;
    }
}

#define SWEEP(NAME, EARLY)                                                                       \
    __attribute__((noinline)) static void NAME(void) {                                           \
        for (int e = 0; e < E; e++)                                                              \
            for (int h = 0; h < 2; h++)                                                          \
                panel(A + e * ROWS * K, B + e * K * 16, C + e * ROWS * 32 + h * 16, EARLY);      \
    }
SWEEP(plain, 0)
SWEEP(stagger2, 2)
SWEEP(stagger4, 4)
SWEEP(stagger8, 8)

static void part2(void) {
    for (int i = 0; i < E * ROWS * K; i++) A[i] = 1e-3f * (i % 97);
    for (int i = 0; i < E * K * 16; i++) B[i] = 2e-3f * (i % 13);
    void (*f[4])(void) = {plain, stagger2, stagger4, stagger8};
    const char *names[] = {"plain", "staggered 2 steps", "staggered 4 steps", "staggered 8 steps"};
    plain();
    memcpy(C_plain, C, sizeof C);
    for (int v = 1; v < 4; v++) {
        memset(C, 0, sizeof C);
        f[v]();
        if (memcmp(C, C_plain, sizeof C)) printf("  %s: different bits!\n", names[v]);
    }
    double best[4] = {1e9, 1e9, 1e9, 1e9};
    for (int trial = 0; trial < 1500; trial++)
        for (int v = 0; v < 4; v++) {
            f[v]();
            double t0 = now();
            f[v]();
            double dt = now() - t0;
            if (dt < best[v]) best[v] = dt;
        }
    printf("E=%d members, %d x %d by %d x 32 (f32), six-row two-vector tiles:\n", E, ROWS, K, K);
    for (int v = 0; v < 4; v++)
        printf("  %-18s %6.1f GFLOP/s (%.3f of plain)\n", names[v],
               2.0 * E * ROWS * K * 32 / best[v] / 1e9, best[0] / best[v]);
}

int main(void) {
    part1();
    part2();
    return 0;
}
