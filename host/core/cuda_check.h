/* cuda_check.h - error reporting shared by the host code that drives the GPU (models/encoder_gpu.c,
 * host/cache/gpu_flat.c), as llm.c's cudaCheck but never exiting: the failing call, its message, file and
 * line go into errbuf, or to the log when the caller gave none, and the function jumps to `out:`.
 *
 * CUDA_CHECK, CUBLAS_CHECK and ARG_CHECK expect `sc_status_t st`, `char *errbuf`, `size_t errlen`
 * and an `out:` label in the calling function. A file that must do more on a device failure (mark
 * an index failed, say) defines SC_CUDA_ON_FAIL() before including this header. Include only from
 * CUDA builds (it needs cuda_runtime_api.h and cublas_v2.h). */
#ifndef SC_CUDA_CHECK_H
#define SC_CUDA_CHECK_H

#include <stdarg.h>
#include <stdio.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "host/core/log.h"
#include "host/core/status.h"

#ifndef SC_CUDA_ON_FAIL
#define SC_CUDA_ON_FAIL() ((void)0)
#endif

static inline void sc_cuda_errf(char *errbuf, size_t errlen, const char *file, int line,
                                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static inline void sc_cuda_errf(char *errbuf, size_t errlen, const char *file, int line,
                                const char *fmt, ...)
{
    char local[512];
    char *buf = errbuf && errlen ? errbuf : local;
    size_t len = errbuf && errlen ? errlen : sizeof local;
    int n = snprintf(buf, len, "%s:%d: ", file, line);
    if (n < 0 || (size_t)n >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, len - (size_t)n, fmt, ap);
    va_end(ap);
    if (buf == local)
        sc_error("cuda_error", "msg=\"%s\"", local);
}

#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t cu_err_ = (cudaError_t)(call);                                                 \
        if (cu_err_ != cudaSuccess) {                                                              \
            sc_cuda_errf(errbuf, errlen, __FILE__, __LINE__, "%s: %s", #call,                      \
                         cudaGetErrorString(cu_err_));                                             \
            SC_CUDA_ON_FAIL();                                                                     \
            st = SC_ERR_CUDA;                                                                      \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

#define CUBLAS_CHECK(call)                                                                         \
    do {                                                                                           \
        cublasStatus_t cb_err_ = (call);                                                           \
        if (cb_err_ != CUBLAS_STATUS_SUCCESS) {                                                    \
            sc_cuda_errf(errbuf, errlen, __FILE__, __LINE__, "%s: %s", #call,                      \
                         cublasGetStatusString(cb_err_));                                          \
            SC_CUDA_ON_FAIL();                                                                     \
            st = SC_ERR_CUDA;                                                                      \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

#define ARG_CHECK(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            sc_cuda_errf(errbuf, errlen, __FILE__, __LINE__, __VA_ARGS__);                         \
            st = SC_ERR_INVALID_ARG;                                                               \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

#endif
