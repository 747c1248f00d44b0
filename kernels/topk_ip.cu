/* topk_ip.cu - per query (one block), the k best columns of its score row among those whose scope
 * equals the query's: the scope test is inside the selection, so a scope with few members still
 * gets all of them. Each thread keeps the SC_TOPK_MAX best of its strided slice, sorted, in
 * registers (an unrolled insertion; indices are compile-time, so nothing spills to local memory);
 * then k rounds of a block-wide argmax over the threads' heads, the winner popping its head by an
 * unrolled shift. Order: score descending, column ascending on ties. */
#include <limits.h>
#include <math.h>

#include "kernels/topk_ip.cuh"

#define SC_TOPK_NONE  INT_MAX /* an empty slot: loses every tie, so real columns come first */
#define SC_TOPK_WARPS (SC_TOPK_THREADS / SC_WARP)

/* (s, i) ranks before (t, j); a NaN s never does, so NaNs are never kept. */
static __device__ __forceinline__ bool sc_topk_better(float s, int i, float t, int j)
{
    return s > t || (s == t && i < j);
}

/* Insert (s, c) into the sorted list (ls, li) if it ranks above the last entry; the last falls
 * off. Unrolled, so the arrays stay in registers. */
static __device__ __forceinline__ void sc_topk_push(float (&ls)[SC_TOPK_MAX],
                                                    int (&li)[SC_TOPK_MAX], float s, int c)
{
    if (!sc_topk_better(s, c, ls[SC_TOPK_MAX - 1], li[SC_TOPK_MAX - 1]))
        return;
#pragma unroll
    for (int r = 0; r < SC_TOPK_MAX; r++) {
        if (sc_topk_better(s, c, ls[r], li[r])) {
            const float ts = ls[r];
            const int ti = li[r];
            ls[r] = s;
            li[r] = c;
            s = ts;
            c = ti;
        }
    }
}

static __global__ void __launch_bounds__(SC_TOPK_THREADS)
    sc_topk_ip_kernel(const float *__restrict__ scores, const uint64_t *__restrict__ qscope,
                      const uint64_t *__restrict__ bscope, int n, int k,
                      float *__restrict__ out_scores, int64_t *__restrict__ out_idx)
{
    __shared__ float warp_s[SC_TOPK_WARPS];
    __shared__ int warp_i[SC_TOPK_WARPS];
    const int q = blockIdx.x;
    const int t = threadIdx.x, lane = t % SC_WARP, warp = t / SC_WARP;
    const uint64_t qs = qscope[q];
    const float *row = scores + (size_t)q * (size_t)n;

    float ls[SC_TOPK_MAX];
    int li[SC_TOPK_MAX];
#pragma unroll
    for (int r = 0; r < SC_TOPK_MAX; r++) {
        ls[r] = -INFINITY;
        li[r] = SC_TOPK_NONE;
    }

    /* ---- local pass: the thread's SC_TOPK_MAX best, best first ----
     * SC_TOPK_UNROLL columns per step, their loads issued before any is used: with few queries
     * (few blocks) the pass is latency-bound, and this keeps several loads in flight. */
    int j = t;
    for (; j + (SC_TOPK_UNROLL - 1) * SC_TOPK_THREADS < n; j += SC_TOPK_UNROLL * SC_TOPK_THREADS) {
        bool m[SC_TOPK_UNROLL];
        float s[SC_TOPK_UNROLL];
#pragma unroll
        for (int u = 0; u < SC_TOPK_UNROLL; u++)
            m[u] = bscope[j + u * SC_TOPK_THREADS] == qs;
#pragma unroll
        for (int u = 0; u < SC_TOPK_UNROLL; u++)
            s[u] = m[u] ? row[j + u * SC_TOPK_THREADS] : 0.f;
#pragma unroll
        for (int u = 0; u < SC_TOPK_UNROLL; u++)
            if (m[u])
                sc_topk_push(ls, li, s[u], j + u * SC_TOPK_THREADS);
    }
    for (; j < n; j += SC_TOPK_THREADS)
        if (bscope[j] == qs)
            sc_topk_push(ls, li, row[j], j);

    /* ---- block merge: k rounds of argmax over the heads ---- */
    float *os = out_scores + (size_t)q * (size_t)k;
    int64_t *oi = out_idx + (size_t)q * (size_t)k;
    for (int r = 0; r < k; r++) {
        float bs = ls[0];
        int bi = li[0];
#pragma unroll
        for (int o = SC_WARP / 2; o > 0; o >>= 1) {
            const float xs = __shfl_xor_sync(SC_FULL_MASK, bs, o);
            const int xi = __shfl_xor_sync(SC_FULL_MASK, bi, o);
            if (sc_topk_better(xs, xi, bs, bi)) {
                bs = xs;
                bi = xi;
            }
        }
        if (lane == 0) {
            warp_s[warp] = bs;
            warp_i[warp] = bi;
        }
        __syncthreads();
        bs = warp_s[0];
        bi = warp_i[0];
#pragma unroll
        for (int w = 1; w < SC_TOPK_WARPS; w++) {
            if (sc_topk_better(warp_s[w], warp_i[w], bs, bi)) {
                bs = warp_s[w];
                bi = warp_i[w];
            }
        }
        __syncthreads(); /* everyone has read warp_s/warp_i before the next round writes them */
        if (bi == SC_TOPK_NONE) { /* no member left anywhere: the same answer in every thread */
            for (int x = r + t; x < k; x += SC_TOPK_THREADS) {
                os[x] = -INFINITY;
                oi[x] = -1;
            }
            break;
        }
        if (t == 0) {
            os[r] = bs;
            oi[r] = bi;
        }
        if (li[0] == bi) { /* columns are unique to a thread: only the owner pops */
#pragma unroll
            for (int x = 0; x < SC_TOPK_MAX - 1; x++) {
                ls[x] = ls[x + 1];
                li[x] = li[x + 1];
            }
            ls[SC_TOPK_MAX - 1] = -INFINITY;
            li[SC_TOPK_MAX - 1] = SC_TOPK_NONE;
        }
    }
}

extern "C" int sc_topk_ip(const float *scores, const uint64_t *qscope, const uint64_t *bscope,
                          int nq, int n, int k, float *out_scores, int64_t *out_idx,
                          cudaStream_t stream)
{
    SC_KERNEL_REQUIRE(nq >= 0 && n >= 0 && n <= INT_MAX - SC_TOPK_UNROLL * SC_TOPK_THREADS);
    SC_KERNEL_REQUIRE(k >= 1 && k <= SC_TOPK_MAX);
    if (nq == 0)
        return (int)cudaSuccess;
    SC_KERNEL_REQUIRE(qscope && out_scores && out_idx && (n == 0 || (scores && bscope)));
    sc_topk_ip_kernel<<<(unsigned)nq, SC_TOPK_THREADS, 0, stream>>>(scores, qscope, bscope, n, k,
                                                                    out_scores, out_idx);
    SC_KERNEL_CHECK();
    return (int)cudaSuccess;
}
