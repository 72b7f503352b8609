/*
 * The ceiling of flock's AVX2 microkernel loop: one 6-row x 2-vector tile of C (12 accumulators,
 * two loads of B and six broadcasts of A per k step), written in C and called once per tile with
 * every operand in L1 -- what the loop itself reaches at a given k, apart from flock's packing,
 * tile bookkeeping and memory traffic. Compare its GFLOP/s with the `gflops` bench's FMA peak.
 *
 *   gcc -O2 -march=x86-64-v3 kernels/benches/tile_ceiling.c -o /tmp/tile_ceiling
 *   /tmp/tile_ceiling            # f32 and f64 at k = 32, 80, 128; A read along its rows
 *   /tmp/tile_ceiling 1024       # A read down its columns, rows 1024 bytes apart
 *
 * Used for the README's "What bounds the products there" (Intel Xeon, AVX-512 machine).
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float af[1 << 16] __attribute__((aligned(64)));
static float bf[1 << 12] __attribute__((aligned(64)));
static float cf[1 << 12] __attribute__((aligned(64)));
static double ad[1 << 16] __attribute__((aligned(64)));
static double bd[1 << 12] __attribute__((aligned(64)));
static double cd[1 << 12] __attribute__((aligned(64)));

/* One tile: C[6][2 vectors] = sum over p of A[i, p] * B[p, :]; A[i, p] = a[i*ars + p*acs]. */
#define TILE(NAME, T, V, LOAD, BCAST, FMA, STORE, ZERO, LANES)                                   \
    __attribute__((noinline)) static void NAME(const T *a, long ars, long acs, const T *b,       \
                                               long brs, T *c, long k) {                         \
        V c00 = ZERO(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00;        \
        V c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;                                 \
        long o1 = ars, o2 = 2 * ars, o3 = 3 * ars, o4 = 4 * ars, o5 = 5 * ars;                   \
        __asm__("" : "+r"(o1), "+r"(o2), "+r"(o3), "+r"(o4), "+r"(o5));                          \
        for (long p = 0; p < k; p++) {                                                           \
            V b0 = LOAD(b), b1 = LOAD(b + LANES), x;                                             \
            x = BCAST(a); c00 = FMA(x, b0, c00); c01 = FMA(x, b1, c01);                         \
            x = BCAST(a + o1); c10 = FMA(x, b0, c10); c11 = FMA(x, b1, c11);                    \
            x = BCAST(a + o2); c20 = FMA(x, b0, c20); c21 = FMA(x, b1, c21);                    \
            x = BCAST(a + o3); c30 = FMA(x, b0, c30); c31 = FMA(x, b1, c31);                    \
            x = BCAST(a + o4); c40 = FMA(x, b0, c40); c41 = FMA(x, b1, c41);                    \
            x = BCAST(a + o5); c50 = FMA(x, b0, c50); c51 = FMA(x, b1, c51);                    \
            a += acs;                                                                            \
            b += brs;                                                                            \
        }                                                                                        \
        STORE(c, c00); STORE(c + LANES, c01); STORE(c + 2 * LANES, c10);                        \
        STORE(c + 3 * LANES, c11); STORE(c + 4 * LANES, c20); STORE(c + 5 * LANES, c21);         \
        STORE(c + 6 * LANES, c30); STORE(c + 7 * LANES, c31); STORE(c + 8 * LANES, c40);         \
        STORE(c + 9 * LANES, c41); STORE(c + 10 * LANES, c50); STORE(c + 11 * LANES, c51);       \
    }

TILE(tile_f32, float, __m256, _mm256_loadu_ps, _mm256_broadcast_ss, _mm256_fmadd_ps,
     _mm256_storeu_ps, _mm256_setzero_ps, 8)
TILE(tile_f64, double, __m256d, _mm256_loadu_pd, _mm256_broadcast_sd, _mm256_fmadd_pd,
     _mm256_storeu_pd, _mm256_setzero_pd, 4)

int main(int argc, char **argv) {
    long column_bytes = argc > 1 ? atol(argv[1]) : 0;
    for (int i = 0; i < (1 << 16); i++) af[i] = 1e-3f * (i % 97), ad[i] = 1e-3 * (i % 97);
    for (int i = 0; i < (1 << 12); i++) bf[i] = 2e-3f, bd[i] = 2e-3;
    long ks[] = {32, 80, 128};
    for (int precision = 0; precision < 2; precision++) {
        long size = precision ? 8 : 4, lanes = precision ? 4 : 8;
        for (int ki = 0; ki < 3; ki++) {
            long k = ks[ki];
            /* A along its rows (a_cs = 1, rows k apart) or down its columns (rows adjacent). */
            long acs = column_bytes ? column_bytes / size : 1, ars = column_bytes ? 1 : k;
            double flops = 2.0 * 6 * 2 * lanes * k, best = 0;
            long reps = (long)(2e9 / flops) + 1;
            for (int run = 0; run < 5; run++) {
                double t0 = now();
                for (long r = 0; r < reps; r++) {
                    if (precision)
                        tile_f64(ad, ars, acs, bd, 2 * lanes, cd, k);
                    else
                        tile_f32(af, ars, acs, bf, 2 * lanes, cf, k);
                }
                double gflops = reps * flops / (now() - t0) / 1e9;
                if (gflops > best) best = gflops;
            }
            printf("%s k=%-4ld %6.1f GFLOP/s (fastest of 5 runs)\n", precision ? "f64" : "f32", k,
                   best);
        }
    }
    return 0;
}
