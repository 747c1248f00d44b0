/* router_head.cu - out[i] = sigmoid(w2·relu(w1·x_i + b1) + b2) (or sigmoid(w2·x_i + b2) when
 * hidden = 0), one warp per row: the row is staged in shared memory, lanes take hidden units
 * (or features) in turn, each a plain fp32 dot product, and the warp sums the partial logits. */
#include "kernels/router_head.cuh"

static __global__ void __launch_bounds__(SC_ROUTER_HEAD_WARPS *SC_WARP)
    sc_router_head_kernel(const float *__restrict__ x, int n, int f, const float *__restrict__ w1,
                          const float *__restrict__ b1, int hidden, const float *__restrict__ w2,
                          float b2, float *__restrict__ out)
{
    __shared__ float sc_rh_row[SC_ROUTER_HEAD_WARPS][SC_ROUTER_HEAD_MAX_F];
    const int warp = (int)(threadIdx.x / SC_WARP);
    const int lane = (int)(threadIdx.x % SC_WARP);
    const int row = (int)blockIdx.x * SC_ROUTER_HEAD_WARPS + warp;
    if (row >= n) /* whole warps leave together: no block-wide barrier below */
        return;
    float *xs = sc_rh_row[warp];
    const float *xi = x + (size_t)row * (size_t)f;
    for (int d = lane; d < f; d += SC_WARP)
        xs[d] = xi[d];
    __syncwarp();

    float part = 0.f;
    if (hidden == 0) {
        for (int d = lane; d < f; d += SC_WARP)
            part += w2[d] * xs[d];
    } else {
        for (int j = lane; j < hidden; j += SC_WARP) {
            const float *w = w1 + (size_t)j * (size_t)f;
            float h = b1[j];
            for (int d = 0; d < f; d++)
                h += w[d] * xs[d];
            part += w2[j] * fmaxf(h, 0.f);
        }
    }
    part = sc_warp_sum(part);
    if (lane == 0)
        out[row] = 1.f / (1.f + expf(-(part + b2)));
}

extern "C" int sc_router_head(const float *x, int n, int f, const float *w1, const float *b1,
                              int hidden, const float *w2, float b2, float *out,
                              cudaStream_t stream)
{
    SC_KERNEL_REQUIRE(n >= 0 && f > 0 && f <= SC_ROUTER_HEAD_MAX_F && hidden >= 0);
    SC_KERNEL_REQUIRE(hidden == 0 || (w1 != NULL && b1 != NULL));
    if (n == 0)
        return (int)cudaSuccess;
    const unsigned blocks = (unsigned)((n + SC_ROUTER_HEAD_WARPS - 1) / SC_ROUTER_HEAD_WARPS);
    sc_router_head_kernel<<<blocks, SC_ROUTER_HEAD_WARPS * SC_WARP, 0, stream>>>(
        x, n, f, w1, b1, hidden, w2, b2, out);
    SC_KERNEL_CHECK();
    return (int)cudaSuccess;
}
