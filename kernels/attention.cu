/* attention.cu - ctx = softmax(q·kᵀ/√d)·v per (sequence, head) over packed sequences.
 *
 * Grid (sequence, head, query tile of SC_ATTN_ROWS rows); a block of SC_ATTN_WARPS warps first
 * copies the head's K and V (bias added, fp16) for the whole sequence into shared memory, then
 * each warp takes every SC_ATTN_WARPS-th query row of the tile: lane l scores keys l, l+32, …
 * (q in fp32 registers), the softmax is reduced over the warp with shuffles in fp32, and for
 * p·V lane l owns output dimension l, receiving each p_j by shuffle from the lane that holds it.
 * Tiles that start past a short sequence's end leave at once, so a 32-token sequence costs one
 * block of 128 threads per head. */
#include <math.h>

#include "kernels/attention.cuh"

static_assert(SC_ATTN_HEAD_DIM == SC_WARP, "p·V maps one lane to one head dimension");
static_assert(SC_ATTN_MAX_LEN % SC_WARP == 0, "scores are held SC_ATTN_SLOTS per lane");

static __global__ void __launch_bounds__(SC_ATTN_THREADS)
    sc_attention_kernel(const __half *__restrict__ qkv, const __half *__restrict__ qkv_bias,
                        const int32_t *__restrict__ seq_off, int heads, int max_len,
                        __half *__restrict__ ctx)
{
    extern __shared__ __align__(16) unsigned char sc_attn_smem[];
    constexpr int D = SC_ATTN_HEAD_DIM;
    const int s = blockIdx.x, h = blockIdx.y;
    const int start = seq_off[s];
    const int len = seq_off[s + 1] - start;
    const int q0 = blockIdx.z * SC_ATTN_ROWS;
    /* uniform over the block, before any barrier; len > max_len would overrun shared memory */
    if (len <= 0 || len > max_len || q0 >= len)
        return;
    const int hidden = heads * D;
    const size_t row_stride = 3 * (size_t)hidden;
    __half *vs = reinterpret_cast<__half *>(sc_attn_smem); /* [max_len][D], 16-byte rows */
    __half *ks = vs + (size_t)max_len * D;                 /* [max_len][SC_ATTN_KSTRIDE] */
    const __half *kb = qkv_bias + hidden + h * D;
    const __half *vb = qkv_bias + 2 * hidden + h * D;

    /* ---- K and V of this head into shared memory, 8 halves per thread and step ---- */
    for (int c = threadIdx.x; c < len * (D / 8); c += blockDim.x) {
        const int j = c / (D / 8), d = (c % (D / 8)) * 8;
        const __half *row = qkv + (size_t)(start + j) * row_stride;
        float k[8], v[8], b[8];
        sc_load8(row + hidden + h * D + d, k);
        sc_load8(kb + d, b);
#pragma unroll
        for (int t = 0; t < 8; t++)
            k[t] += b[t];
        sc_load8(row + 2 * hidden + h * D + d, v);
        sc_load8(vb + d, b);
#pragma unroll
        for (int t = 0; t < 8; t++)
            v[t] += b[t];
        sc_store8(vs + j * D + d, v);
        __half2 *kd =
            reinterpret_cast<__half2 *>(ks + j * SC_ATTN_KSTRIDE + d); /* 4-byte aligned */
#pragma unroll
        for (int t = 0; t < 4; t++)
            kd[t] = __floats2half2_rn(k[2 * t], k[2 * t + 1]);
    }
    __syncthreads();

    const int warp = threadIdx.x / SC_WARP, lane = threadIdx.x % SC_WARP;
    const int q_end = min(q0 + SC_ATTN_ROWS, len);
    const float scale = rsqrtf((float)D);
    for (int i = q0 + warp; i < q_end; i += SC_ATTN_WARPS) {
        /* ---- q (bias added, pre-scaled) in fp32 registers, the same in every lane ---- */
        const __half *qrow = qkv + (size_t)(start + i) * row_stride + h * D;
        float q[D];
#pragma unroll
        for (int d = 0; d < D; d += 8) {
            float a[8], b[8];
            sc_load8(qrow + d, a);
            sc_load8(qkv_bias + h * D + d, b);
#pragma unroll
            for (int t = 0; t < 8; t++)
                q[d + t] = (a[t] + b[t]) * scale;
        }

        /* ---- scores: lane holds keys t*32 + lane ---- */
        float p[SC_ATTN_SLOTS];
        float m = -INFINITY;
#pragma unroll
        for (int t = 0; t < SC_ATTN_SLOTS; t++) {
            const int j = t * SC_WARP + lane;
            p[t] = -INFINITY;
            if (j < len) {
                const __half2 *kr = reinterpret_cast<const __half2 *>(ks + j * SC_ATTN_KSTRIDE);
                float acc = 0.f;
#pragma unroll
                for (int d2 = 0; d2 < D / 2; d2++) {
                    const float2 kk = __half22float2(kr[d2]);
                    acc = fmaf(q[2 * d2], kk.x, acc);
                    acc = fmaf(q[2 * d2 + 1], kk.y, acc);
                }
                p[t] = acc;
                m = fmaxf(m, acc);
            }
        }

        /* ---- softmax in fp32: the max is finite (key 0 exists), so exp never sees inf-inf ---- */
        m = sc_warp_max(m);
        float sum = 0.f;
#pragma unroll
        for (int t = 0; t < SC_ATTN_SLOTS; t++) {
            p[t] = t * SC_WARP + lane < len ? expf(p[t] - m) : 0.f;
            sum += p[t];
        }
        sum = sc_warp_sum(sum);

        /* ---- p·V: lane owns dimension `lane`; p_j comes from lane j % 32, slot j / 32 ---- */
        float acc = 0.f;
#pragma unroll
        for (int t = 0; t < SC_ATTN_SLOTS; t++) {
            const int base = t * SC_WARP;
            if (base >= len) /* uniform over the warp */
                break;
            const int n = min(SC_WARP, len - base);
            for (int src = 0; src < n; src++) {
                const float pj = __shfl_sync(SC_FULL_MASK, p[t], src);
                acc = fmaf(pj, __half2float(vs[(base + src) * D + lane]), acc);
            }
        }
        ctx[(size_t)(start + i) * hidden + h * D + lane] = __float2half_rn(acc / sum);
    }
}

extern "C" int sc_attention(const sc_half *qkv, const sc_half *qkv_bias, const int32_t *seq_off,
                            int n_seqs, int max_len, int heads, int head_dim, sc_half *ctx,
                            cudaStream_t stream)
{
    SC_KERNEL_REQUIRE(n_seqs >= 0 && heads > 0 && head_dim == SC_ATTN_HEAD_DIM);
    SC_KERNEL_REQUIRE(max_len >= 0 && max_len <= SC_ATTN_MAX_LEN);
    SC_KERNEL_REQUIRE(heads <= 65535 && sc_aligned16(qkv) && sc_aligned16(qkv_bias));
    if (n_seqs == 0 || max_len == 0)
        return (int)cudaSuccess;
    const dim3 grid((unsigned)n_seqs, (unsigned)heads,
                    (unsigned)((max_len + SC_ATTN_ROWS - 1) / SC_ATTN_ROWS));
    const dim3 block(SC_ATTN_THREADS);
    /* at most 256 · 66 · 2 = 33 792 bytes: under the 48 KB a block gets without opting in */
    const size_t smem = sc_attention_smem_bytes(max_len);
    sc_attention_kernel<<<grid, block, smem, stream>>>(
        reinterpret_cast<const __half *>(qkv), reinterpret_cast<const __half *>(qkv_bias), seq_off,
        heads, max_len, reinterpret_cast<__half *>(ctx));
    SC_KERNEL_CHECK();
    return (int)cudaSuccess;
}
