/* attention.cu - ctx = softmax(q·kᵀ/√d)·v per (sequence, head) over packed sequences.
 *
 * Grid (sequence, head, query tile of SC_ATTN_ROWS rows); a block of SC_ATTN_WARPS warps first
 * copies the head's K and V (bias added, fp16) for the whole sequence, and the tile's queries
 * (bias added, pre-scaled, fp32), into shared memory; then each warp takes every
 * SC_ATTN_WARPS-th query row of the tile. Scores: lane l scores keys l, l+32, … against the query
 * read from shared memory (a broadcast), the softmax is reduced over the warp with shuffles in
 * fp32, and the unnormalised probabilities go to the warp's row in shared memory. p·V: lane l owns
 * the dimension pair 2·(l mod 16) and every other key (parity l / 16); the two halves of the warp
 * are added with one shuffle. Tiles that start past a short sequence's end leave at once, so a
 * 32-token sequence costs one block of 128 threads per head. (The first version read the query
 * from global memory in every lane and passed each probability by shuffle: on an H200 at 32
 * tokens the kernel took 40% of the forward, issue-bound.) */
#include <math.h>

#include "kernels/attention.cuh"

static_assert(SC_ATTN_HEAD_DIM == SC_WARP, "scores: a query row is one 32-float broadcast");
static_assert(SC_ATTN_HEAD_DIM % 8 == 0, "K and V are loaded 8 halves at a time");
static_assert(SC_ATTN_MAX_LEN % SC_WARP == 0, "scores are held SC_ATTN_SLOTS per lane");
static_assert(SC_ATTN_KSTRIDE % 4 == 0, "K rows are read 8 bytes at a time");

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
    const int q_end = min(q0 + SC_ATTN_ROWS, len);
    const int hidden = heads * D;
    const size_t row_stride = 3 * (size_t)hidden;
    __half *vs = reinterpret_cast<__half *>(sc_attn_smem); /* [max_len][D], 16-byte rows */
    __half *ks = vs + (size_t)max_len * D;                 /* [max_len][SC_ATTN_KSTRIDE] */
    float *qs = reinterpret_cast<float *>(sc_attn_smem + (size_t)max_len * D * sizeof(__half) +
                                          sc_attention_k_bytes(max_len)); /* [ROWS][D] */
    float *ps = qs + SC_ATTN_ROWS * D;                                    /* [WARPS][max_len] */
    const __half *kb = qkv_bias + hidden + h * D;
    const __half *vb = qkv_bias + 2 * hidden + h * D;
    const __half *qb = qkv_bias + h * D;
    const float scale = rsqrtf((float)D);

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
            reinterpret_cast<__half2 *>(ks + j * SC_ATTN_KSTRIDE + d); /* 8-byte aligned */
#pragma unroll
        for (int t = 0; t < 4; t++)
            kd[t] = __floats2half2_rn(k[2 * t], k[2 * t + 1]);
    }
    /* ---- the tile's queries, bias added and pre-scaled, fp32 ---- */
    for (int c = threadIdx.x; c < (q_end - q0) * (D / 8); c += blockDim.x) {
        const int r = c / (D / 8), d = (c % (D / 8)) * 8;
        float a[8], b[8];
        sc_load8(qkv + (size_t)(start + q0 + r) * row_stride + h * D + d, a);
        sc_load8(qb + d, b);
        float *qd = qs + r * D + d;
#pragma unroll
        for (int t = 0; t < 8; t++)
            qd[t] = (a[t] + b[t]) * scale;
    }
    __syncthreads();

    const int warp = threadIdx.x / SC_WARP, lane = threadIdx.x % SC_WARP;
    const int dp = lane % (D / 2), kp = lane / (D / 2); /* p·V: dimension pair, key parity */
    float *pw = ps + (size_t)warp * max_len;
    const __half2 *v2 = reinterpret_cast<const __half2 *>(vs);
    for (int i = q0 + warp; i < q_end; i += SC_ATTN_WARPS) {
        /* ---- the query, from shared memory (the same address in every lane: a broadcast) ---- */
        float q[D];
        const float4 *qr = reinterpret_cast<const float4 *>(qs + (i - q0) * D);
#pragma unroll
        for (int d4 = 0; d4 < D / 4; d4++) {
            const float4 t = qr[d4];
            q[4 * d4] = t.x;
            q[4 * d4 + 1] = t.y;
            q[4 * d4 + 2] = t.z;
            q[4 * d4 + 3] = t.w;
        }

        /* ---- scores: lane holds keys t*32 + lane ---- */
        float p[SC_ATTN_SLOTS];
        float m = -INFINITY;
#pragma unroll
        for (int t = 0; t < SC_ATTN_SLOTS; t++) {
            const int j = t * SC_WARP + lane;
            p[t] = -INFINITY;
            if (j < len) {
                const uint2 *kr = reinterpret_cast<const uint2 *>(ks + j * SC_ATTN_KSTRIDE);
                float acc0 = 0.f, acc1 = 0.f;
#pragma unroll
                for (int d4 = 0; d4 < D / 4; d4++) {
                    const uint2 u = kr[d4];
                    const float2 lo = __half22float2(*reinterpret_cast<const __half2 *>(&u.x));
                    const float2 hi = __half22float2(*reinterpret_cast<const __half2 *>(&u.y));
                    acc0 = fmaf(q[4 * d4], lo.x, acc0);
                    acc1 = fmaf(q[4 * d4 + 1], lo.y, acc1);
                    acc0 = fmaf(q[4 * d4 + 2], hi.x, acc0);
                    acc1 = fmaf(q[4 * d4 + 3], hi.y, acc1);
                }
                p[t] = acc0 + acc1;
                m = fmaxf(m, p[t]);
            }
        }

        /* ---- softmax in fp32: the max is finite (key 0 exists), so exp never sees inf-inf;
         * the unnormalised probabilities go to the warp's row ---- */
        m = sc_warp_max(m);
        float sum = 0.f;
#pragma unroll
        for (int t = 0; t < SC_ATTN_SLOTS; t++) {
            const int j = t * SC_WARP + lane;
            if (t * SC_WARP >= len) /* uniform over the warp */
                break;
            const float e = j < len ? expf(p[t] - m) : 0.f;
            sum += e;
            if (j < len)
                pw[j] = e;
        }
        sum = sc_warp_sum(sum);
        __syncwarp(); /* pw written before any lane reads it */

        /* ---- p·V: lane owns dimensions 2·dp, 2·dp+1 and the keys of parity kp ---- */
        float a0 = 0.f, a1 = 0.f, b0 = 0.f, b1 = 0.f;
        int j = kp;
        for (; j + 2 < len; j += 4) {
            const float pj = pw[j], pk = pw[j + 2];
            const float2 vj = __half22float2(v2[j * (D / 2) + dp]);
            const float2 vk = __half22float2(v2[(j + 2) * (D / 2) + dp]);
            a0 = fmaf(pj, vj.x, a0);
            a1 = fmaf(pj, vj.y, a1);
            b0 = fmaf(pk, vk.x, b0);
            b1 = fmaf(pk, vk.y, b1);
        }
        if (j < len) {
            const float pj = pw[j];
            const float2 vj = __half22float2(v2[j * (D / 2) + dp]);
            a0 = fmaf(pj, vj.x, a0);
            a1 = fmaf(pj, vj.y, a1);
        }
        a0 += b0;
        a1 += b1;
        a0 += __shfl_xor_sync(SC_FULL_MASK, a0, D / 2);
        a1 += __shfl_xor_sync(SC_FULL_MASK, a1, D / 2);
        if (kp == 0) {
            const float inv = 1.f / sum;
            *reinterpret_cast<__half2 *>(ctx + (size_t)(start + i) * hidden + h * D + 2 * dp) =
                __floats2half2_rn(a0 * inv, a1 * inv);
        }
        __syncwarp(); /* every lane has read pw before the next row overwrites it */
    }
}

extern "C" int sc_attention(const sc_half *qkv, const sc_half *qkv_bias, const int32_t *seq_off,
                            int n_seqs, int max_len, int heads, int head_dim, sc_half *ctx,
                            cudaStream_t stream)
{
    SC_KERNEL_REQUIRE(n_seqs >= 0 && heads > 0 && head_dim == SC_ATTN_HEAD_DIM);
    SC_KERNEL_REQUIRE(max_len >= 0 && max_len <= SC_ATTN_MAX_LEN);
    SC_KERNEL_REQUIRE(heads <= 65535 && sc_aligned16(qkv) && sc_aligned16(qkv_bias) &&
                      ((uintptr_t)ctx & 3u) == 0);
    if (n_seqs == 0 || max_len == 0)
        return (int)cudaSuccess;
    const dim3 grid((unsigned)n_seqs, (unsigned)heads,
                    (unsigned)((max_len + SC_ATTN_ROWS - 1) / SC_ATTN_ROWS));
    const dim3 block(SC_ATTN_THREADS);
    const size_t smem = sc_attention_smem_bytes(max_len); /* <= 47 104 bytes (attention.cuh) */
    sc_attention_kernel<<<grid, block, smem, stream>>>(
        reinterpret_cast<const __half *>(qkv), reinterpret_cast<const __half *>(qkv_bias), seq_off,
        heads, max_len, reinterpret_cast<__half *>(ctx));
    SC_KERNEL_CHECK();
    return (int)cudaSuccess;
}
