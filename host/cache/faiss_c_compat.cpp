// faiss_c_compat.cpp - the subset of FAISS's official C API (faiss/c_api/*.h) that host/cache/cache.c
// calls, implemented over the C++ library, for systems (Debian) that ship libfaiss.a without
// libfaiss_c. Compiled only when no libfaiss_c is found. Every C++ exception is caught and turned
// into a non-zero return, its message kept for faiss_get_last_error(), as the C API does.
//
// Debian builds libfaiss.a for baseline x86-64, where FAISS computes every inner product with its
// scalar reference loop (fvec_inner_product_ref): HNSW then builds and searches several times
// slower than FAISS anywhere else. So for the descriptions the cache uses ("IDMap,Flat",
// "IDMap,HNSW<M>,Flat" with METRIC_INNER_PRODUCT) the factory here builds the same FAISS index
// types over a flat storage whose distance computer (and small-batch search) is vectorised, with
// AVX2+FMA chosen at run time where the CPU has it. Results are FAISS's, up to float rounding.
// HNSW partitions (ScHNSWFlat) are searched by this file's own loop over FAISS's graph: on a
// half-precision copy of the vectors, prefetching, the final candidates scored again in float (see
// below). write_index stores these as FAISS's own types (IndexFlatIP, IndexHNSWFlat); read_index
// puts the vectorised ones back.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <sys/mman.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include <faiss/AutoTune.h>
#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/utils/Heap.h>

extern "C" {
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
}

namespace {

// The last error of this thread, as the official C API keeps it.
thread_local std::string sc_faiss_last_error;

// The official codes: -2 a FaissException, -4 another std::exception, -1 anything else.
int sc_faiss_fail(const char *what, int code)
{
    try {
        sc_faiss_last_error = what ? what : "unknown error";
    } catch (...) {
        // out of memory while recording the message: the code still says it failed
    }
    return code;
}

#define SC_FAISS_TRY try {
#define SC_FAISS_CATCH                                                                             \
    }                                                                                              \
    catch (const faiss::FaissException &e)                                                        \
    {                                                                                              \
        return sc_faiss_fail(e.what(), -2);                                                        \
    }                                                                                              \
    catch (const std::exception &e)                                                                \
    {                                                                                              \
        return sc_faiss_fail(e.what(), -4);                                                        \
    }                                                                                              \
    catch (...)                                                                                    \
    {                                                                                              \
        return sc_faiss_fail("unknown error", -1);                                                 \
    }                                                                                              \
    return 0;

// ---- large arrays on transparent huge pages ----

// An HNSW search touches vectors and neighbour lists at random across gigabytes: with 4 KiB pages
// nearly every touch is also a TLB miss. Where the kernel gives transparent huge pages on request
// (madvise mode, Debian's default), the big arrays ask for them before they are first written.
constexpr size_t SC_HUGE = size_t(2) << 20;
constexpr size_t SC_HUGE_MIN = size_t(64) << 20; // smaller arrays are left as they are

void sc_advise_huge(const void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    uintptr_t b = (reinterpret_cast<uintptr_t>(p) + SC_HUGE - 1) & ~(uintptr_t)(SC_HUGE - 1);
    uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(uintptr_t)(SC_HUGE - 1);
    if (e > b)
        madvise(reinterpret_cast<void *>(b), e - b, MADV_HUGEPAGE); // advice: failure is harmless
#else
    (void)p;
    (void)bytes;
#endif
}

// v moved into a new allocation of at least cap elements, advised for huge pages before it is
// touched. Nothing below SC_HUGE_MIN.
template <typename T> void sc_rehome_huge(std::vector<T> &v, size_t cap)
{
    cap = std::max(cap, v.size());
    if (cap * sizeof(T) < SC_HUGE_MIN)
        return;
    std::vector<T> n;
    n.reserve(cap);
    sc_advise_huge(n.data(), cap * sizeof(T));
    n.insert(n.end(), v.begin(), v.end());
    v.swap(n);
}

// Room for `need` elements in v: a huge-page allocation with half as much again to spare when v
// must grow past SC_HUGE_MIN (otherwise std::vector grows it as usual).
template <typename T> void sc_reserve_huge(std::vector<T> &v, size_t need)
{
    if (need > v.capacity() && need * sizeof(T) >= SC_HUGE_MIN)
        sc_rehome_huge(v, std::max(need, v.capacity() + v.capacity() / 2));
}

// ---- a flat inner-product storage with a vectorised distance ----

// Sixteen independent partial sums: the compiler maps them onto SIMD registers without being
// allowed to reorder a single float sum (no -ffast-math needed).
#define SC_IP_BODY                                                                                 \
    float acc[16] = {0};                                                                           \
    size_t i = 0;                                                                                  \
    for (; i + 16 <= d; i += 16)                                                                   \
        for (int j = 0; j < 16; j++)                                                               \
            acc[j] += x[i + j] * y[i + j];                                                         \
    float s = 0;                                                                                   \
    for (; i < d; i++)                                                                             \
        s += x[i] * y[i];                                                                          \
    for (int j = 0; j < 16; j++)                                                                   \
        s += acc[j];                                                                               \
    return s;

float sc_ip_generic(const float *x, const float *y, size_t d) { SC_IP_BODY }

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) float sc_ip_avx2(const float *x, const float *y, size_t d)
{
    SC_IP_BODY
}
#endif

typedef float (*sc_ip_fn)(const float *, const float *, size_t);

sc_ip_fn sc_ip_pick()
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return sc_ip_avx2;
#endif
    return sc_ip_generic;
}

const sc_ip_fn sc_ip = sc_ip_pick();

// Below this many queries FAISS scans query by query (with the scalar loop); from it on, it uses
// BLAS, which is fast already.
constexpr faiss::Index::idx_t SC_FLAT_SCAN_MAX = 20;

struct ScFlatIPDis : faiss::FlatCodesDistanceComputer {
    size_t d;
    const float *xb;
    const float *q = nullptr;
    explicit ScFlatIPDis(const faiss::IndexFlat &s)
        : faiss::FlatCodesDistanceComputer(s.codes.data(), s.code_size), d(s.d), xb(s.get_xb())
    {
    }
    void set_query(const float *x) override { q = x; }
    float distance_to_code(const uint8_t *code) override
    {
        return sc_ip(q, reinterpret_cast<const float *>(code), d);
    }
    float symmetric_dis(idx_t i, idx_t j) override { return sc_ip(xb + i * d, xb + j * d, d); }
};

struct ScFlatIP : faiss::IndexFlatIP {
    explicit ScFlatIP(idx_t dim) : faiss::IndexFlatIP(dim) {}

    void add(idx_t n, const float *x) override
    {
        sc_reserve_huge(codes, (size_t)(ntotal + n) * code_size);
        faiss::IndexFlatIP::add(n, x);
    }

    faiss::FlatCodesDistanceComputer *get_FlatCodesDistanceComputer() const override
    {
        return new ScFlatIPDis(*this);
    }

    void search(idx_t n, const float *x, idx_t k, float *distances, idx_t *labels,
                const faiss::SearchParameters *params = nullptr) const override
    {
        if (n >= SC_FLAT_SCAN_MAX || params || k <= 0) {
            faiss::IndexFlatIP::search(n, x, k, distances, labels, params);
            return;
        }
        using C = faiss::CMin<float, int64_t>; // keep the k largest: a min-heap
        const float *xb = get_xb();
        for (idx_t q = 0; q < n; q++) {
            float *D = distances + q * k;
            idx_t *L = labels + q * k;
            const float *xq = x + q * d;
            faiss::heap_heapify<C>(k, D, L);
            for (idx_t i = 0; i < ntotal; i++) {
                float v = sc_ip(xq, xb + i * d, d);
                if (C::cmp(D[0], v))
                    faiss::heap_replace_top<C>(k, D, L, v, i);
            }
            faiss::heap_reorder<C>(k, D, L);
        }
    }
};

// ---- HNSW: a half-precision copy of the vectors, searched with prefetching ----

// At a million 384-d vectors an HNSW search waits on memory: each neighbour it scores is a cache
// miss, one after the other in FAISS 1.7's loop, over 1.5 GB. This search is the same algorithm
// (greedy descent through the upper layers, then a best-first beam of efSearch on layer 0, as in
// FAISS and hnswlib) with two changes: it scores neighbours against a half-precision copy of the
// vectors (768 bytes instead of 1536 per vector), and it first gathers a node's unvisited
// neighbours, then scores them while the next ones are being fetched, so the misses overlap. The
// best 2k found are then scored again on the float vectors, so the distances returned and their
// order are those of float search. The graph itself is built by FAISS, on the float vectors.

#if defined(__x86_64__) && defined(__GNUC__)
#define SC_HAVE_F16 1
__attribute__((target("avx2,fma,f16c"))) float sc_ip_f16(const float *q, const uint16_t *h,
                                                         size_t d)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps();
    size_t i = 0;
#define SC_H8(o) _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(h + i + (o))))
    for (; i + 32 <= d; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), SC_H8(0), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), SC_H8(8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 16), SC_H8(16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 24), SC_H8(24), a3);
    }
    for (; i + 8 <= d; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), SC_H8(0), a0);
#undef SC_H8
    __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_hadd_ps(s, s);
    s = _mm_hadd_ps(s, s);
    float r = _mm_cvtss_f32(s);
    for (; i < d; i++)
        r += q[i] * _cvtsh_ss(h[i]);
    return r;
}

__attribute__((target("avx2,f16c"))) void sc_to_f16(const float *x, size_t n, uint16_t *out)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i *>(out + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        out[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

bool sc_f16_pick()
{
    // F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports has no "f16c"; AVX2
    // and FMA (whose checks include the OS's AVX state) from the builtin
    unsigned a = 0, b = 0, c = 0, d = 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
}
#else
#define SC_HAVE_F16 0
bool sc_f16_pick() { return false; }
#endif

// Without F16C, or with SCRIMP_HNSW_F16=0 in the environment (half a float copy less memory,
// slower searches), HNSW partitions made from then on score the float vectors.
bool sc_f16 = sc_f16_pick() && !(std::getenv("SCRIMP_HNSW_F16") &&
                                 !std::strcmp(std::getenv("SCRIMP_HNSW_F16"), "0"));

inline void sc_prefetch(const void *v, size_t bytes)
{
    const char *p = static_cast<const char *>(v);
    for (size_t o = 0; o < bytes; o += 64)
        __builtin_prefetch(p + o, 0, 3);
}

// Visited marks for one search at a time per thread: an epoch per search, cleared on wrap.
struct ScVisited {
    std::vector<uint16_t> mark;
    uint16_t epoch = 0;
    void start(size_t n)
    {
        if (mark.size() < n) {
            mark.assign(n, 0);
            epoch = 0;
        }
        if (++epoch == 0) {
            std::fill(mark.begin(), mark.end(), 0);
            epoch = 1;
        }
    }
    bool seen(size_t i)
    {
        if (mark[i] == epoch)
            return true;
        mark[i] = epoch;
        return false;
    }
};

using ScPair = std::pair<float, int>; // score, vector number

struct ScSearchScratch {
    ScVisited visited;
    std::vector<int> todo;
    std::vector<ScPair> cand, best; // heaps: the best candidate on top / the worst kept on top
};

thread_local ScSearchScratch sc_scratch;

// The vectors an HNSW search scores: the half-precision copy when there is one, else the floats.
struct ScVecs {
    const float *xb;
    const uint16_t *h16; // NULL: score xb
    size_t d;
    size_t bytes() const { return d * (h16 ? sizeof(uint16_t) : sizeof(float)); }
    const void *at(int i) const
    {
        return h16 ? static_cast<const void *>(h16 + (size_t)i * d)
                   : static_cast<const void *>(xb + (size_t)i * d);
    }
    float score(const float *q, int i) const
    {
#if SC_HAVE_F16
        if (h16)
            return sc_ip_f16(q, h16 + (size_t)i * d, d);
#endif
        return sc_ip(q, xb + (size_t)i * d, d);
    }
};

// Score the gathered neighbours, two vectors' fetch ahead of the one being scored.
template <typename F> inline void sc_score_todo(const ScVecs &v, const float *q,
                                                const std::vector<int> &todo, F &&take)
{
    size_t n = todo.size(), bytes = v.bytes();
    for (size_t j = 0; j < n && j < 2; j++)
        sc_prefetch(v.at(todo[j]), bytes);
    for (size_t j = 0; j < n; j++) {
        if (j + 2 < n)
            sc_prefetch(v.at(todo[j + 2]), bytes);
        take(todo[j], v.score(q, todo[j]));
    }
}

// k results of one query by inner product (the largest first); labels -1 past what was found.
void sc_hnsw_search_one(const faiss::HNSW &g, const ScVecs &v, size_t ntotal, const float *q,
                        size_t k, size_t ef, float *D, faiss::Index::idx_t *L)
{
    for (size_t i = 0; i < k; i++) {
        D[i] = -std::numeric_limits<float>::infinity();
        L[i] = -1;
    }
    if (g.entry_point < 0 || !ntotal)
        return;
    ScSearchScratch &sc = sc_scratch;
    std::vector<int> &todo = sc.todo;
    int cur = g.entry_point;
    float cur_s = v.score(q, cur);
    for (int level = g.max_level; level >= 1; level--) { // greedy: the best node of the layer
        for (bool moved = true; moved;) {
            moved = false;
            size_t b, e;
            g.neighbor_range(cur, level, &b, &e);
            todo.clear();
            for (size_t i = b; i < e && g.neighbors[i] >= 0; i++)
                todo.push_back(g.neighbors[i]);
            sc_score_todo(v, q, todo, [&](int u, float s) {
                if (s > cur_s) {
                    cur_s = s;
                    cur = u;
                    moved = true;
                }
            });
        }
    }
    std::vector<ScPair> &cand = sc.cand, &best = sc.best;
    std::less<ScPair> cand_cmp;
    std::greater<ScPair> best_cmp;
    cand.clear();
    best.clear();
    sc.visited.start(ntotal);
    sc.visited.seen((size_t)cur);
    cand.emplace_back(cur_s, cur);
    best.emplace_back(cur_s, cur);
    while (!cand.empty()) {
        ScPair top = cand.front();
        if (best.size() >= ef && top.first < best.front().first)
            break; // no candidate left can enter the ef best
        std::pop_heap(cand.begin(), cand.end(), cand_cmp);
        cand.pop_back();
        size_t b, e;
        g.neighbor_range(top.second, 0, &b, &e);
        todo.clear();
        for (size_t i = b; i < e; i++) {
            int u = g.neighbors[i];
            if (u < 0)
                break;
            if (!sc.visited.seen((size_t)u))
                todo.push_back(u);
        }
        sc_score_todo(v, q, todo, [&](int u, float s) {
            if (best.size() < ef || s > best.front().first) {
                cand.emplace_back(s, u);
                std::push_heap(cand.begin(), cand.end(), cand_cmp);
                best.emplace_back(s, u);
                std::push_heap(best.begin(), best.end(), best_cmp);
                if (best.size() > ef) {
                    std::pop_heap(best.begin(), best.end(), best_cmp);
                    best.pop_back();
                }
            }
        });
    }
    std::sort_heap(best.begin(), best.end(), best_cmp); // the largest first
    size_t m = best.size();
    if (v.h16) { // the best 2k again on the floats: float scores, float order
        m = std::min(m, 2 * k);
        for (size_t i = 0; i < m; i++)
            best[i].first = sc_ip(q, v.xb + (size_t)best[i].second * v.d, v.d);
        std::sort(best.begin(), best.begin() + m, best_cmp);
    }
    for (size_t i = 0; i < k && i < m; i++) {
        D[i] = best[i].first;
        L[i] = best[i].second;
    }
}

// IndexHNSWFlat (as write_index and read_index know it) over ScFlatIP, with the half-precision
// copy (h16, kept in step by add and reset; not saved: made again at load), searched as above.
struct ScHNSWFlat : faiss::IndexHNSWFlat {
    std::vector<uint16_t> h16;

    ScHNSWFlat() = default;
    ScHNSWFlat(int dim, int M) : faiss::IndexHNSWFlat(dim, M, faiss::METRIC_INNER_PRODUCT)
    {
        delete storage;
        storage = nullptr;
        storage = new ScFlatIP(dim);
    }

    // The copy of vectors [from, ntotal) of the storage.
    void extend_h16(idx_t from)
    {
#if SC_HAVE_F16
        auto *fs = dynamic_cast<ScFlatIP *>(storage);
        if (!sc_f16 || !fs || h16.size() != (size_t)from * d)
            return;
        size_t n = (size_t)(ntotal - from) * d;
        sc_reserve_huge(h16, h16.size() + n);
        size_t at = h16.size();
        h16.resize(at + n);
        sc_to_f16(fs->get_xb() + (size_t)from * d, n, h16.data() + at);
#else
        (void)from;
#endif
    }

    void add(idx_t n, const float *x) override
    {
        idx_t from = ntotal;
        // room for the graph's new neighbour lists (2M at layer 0, M per upper layer)
        int M = hnsw.nb_neighbors(1);
        sc_reserve_huge(hnsw.neighbors, hnsw.neighbors.size() + (size_t)n * 3 * (size_t)M);
        faiss::IndexHNSWFlat::add(n, x);
        extend_h16(from);
    }

    void reset() override
    {
        faiss::IndexHNSWFlat::reset();
        h16.clear();
    }

    void search(idx_t n, const float *x, idx_t k, float *distances, idx_t *labels,
                const faiss::SearchParameters *params = nullptr) const override
    {
        auto *fs = dynamic_cast<const ScFlatIP *>(storage);
        if (params || !fs || metric_type != faiss::METRIC_INNER_PRODUCT || k <= 0) {
            faiss::IndexHNSWFlat::search(n, x, k, distances, labels, params);
            return;
        }
        size_t ef = std::max<size_t>((size_t)std::max(hnsw.efSearch, 1), (size_t)k);
        ScVecs v{fs->get_xb(), h16.size() == (size_t)ntotal * d && ntotal ? h16.data() : nullptr,
                 (size_t)d};
        if (n == 1) { // the cache's single lookups: no OpenMP region around one search
            sc_hnsw_search_one(hnsw, v, (size_t)ntotal, x, (size_t)k, ef, distances, labels);
            return;
        }
#pragma omp parallel for
        for (idx_t q = 0; q < n; q++)
            sc_hnsw_search_one(hnsw, v, (size_t)ntotal, x + q * d, (size_t)k, ef,
                               distances + q * k, labels + q * k);
    }
};

// "IDMap,Flat" / "IDMap,HNSW<M>,Flat" / "IDMap,HNSW<M>" with inner product over ScFlatIP; NULL
// for any other description (FAISS's own factory builds those).
faiss::Index *sc_fast_factory(int d, const char *desc, FaissMetricType metric)
{
    if (metric != METRIC_INNER_PRODUCT)
        return nullptr;
    if (!std::strcmp(desc, "IDMap,Flat")) {
        auto *m = new faiss::IndexIDMap(new ScFlatIP(d));
        m->own_fields = true;
        return m;
    }
    int M = 0, used = 0;
    if (std::sscanf(desc, "IDMap,HNSW%d%n", &M, &used) != 1 || M < 2)
        return nullptr;
    if (desc[used] != '\0' && std::strcmp(desc + used, ",Flat"))
        return nullptr;
    faiss::IndexHNSW *h = nullptr;
    try {
        h = new ScHNSWFlat(d, M);
        h->own_fields = true;
        h->is_trained = true;
        auto *m = new faiss::IndexIDMap(h);
        m->own_fields = true;
        return m;
    } catch (...) {
        delete h;
        throw;
    }
}

// A flat inner-product index that read_index made (a plain IndexFlatIP): the same vectors in a
// ScFlatIP, so that a loaded index searches as fast as a built one. Others are returned as they are.
faiss::Index *sc_fast_flat(faiss::Index *ix)
{
    auto *f = dynamic_cast<faiss::IndexFlat *>(ix);
    if (!f || dynamic_cast<ScFlatIP *>(f) || f->metric_type != faiss::METRIC_INNER_PRODUCT)
        return ix;
    auto *s = new ScFlatIP(f->d);
    s->codes.swap(f->codes);
    sc_rehome_huge(s->codes, s->codes.size());
    s->ntotal = f->ntotal;
    s->is_trained = f->is_trained;
    delete f;
    return s;
}

// An inner-product IndexHNSWFlat that read_index made: the same graph and vectors in a ScHNSWFlat
// over ScFlatIP. Others are returned as they are.
faiss::Index *sc_fast_hnsw(faiss::Index *ix)
{
    auto *h = dynamic_cast<faiss::IndexHNSWFlat *>(ix);
    if (!h || dynamic_cast<ScHNSWFlat *>(h) || h->metric_type != faiss::METRIC_INNER_PRODUCT ||
        !h->own_fields || h->reconstruct_from_neighbors)
        return ix;
    auto *s = new ScHNSWFlat();
    s->d = h->d;
    s->ntotal = h->ntotal;
    s->verbose = h->verbose;
    s->is_trained = h->is_trained;
    s->metric_type = h->metric_type;
    s->metric_arg = h->metric_arg;
    s->hnsw = std::move(h->hnsw);
    sc_rehome_huge(s->hnsw.neighbors, s->hnsw.neighbors.size());
    s->storage = sc_fast_flat(h->storage);
    s->own_fields = true;
    h->storage = nullptr;
    h->own_fields = false;
    delete h;
    s->extend_h16(0);
    return s;
}

// Swap a loaded "IDMap,Flat" / "IDMap,HNSW<M>,Flat" for the vectorised types (the IDMap's own
// index replaced in place; the returned index is the one to keep).
faiss::Index *sc_fast_loaded(faiss::Index *ix)
{
    if (auto *m = dynamic_cast<faiss::IndexIDMap *>(ix)) {
        if (m->own_fields)
            m->index = sc_fast_hnsw(sc_fast_flat(m->index));
        return ix;
    }
    return sc_fast_hnsw(sc_fast_flat(ix));
}

faiss::Index *sc_ix(FaissIndex *p) { return reinterpret_cast<faiss::Index *>(p); }
const faiss::Index *sc_cix(const FaissIndex *p) { return reinterpret_cast<const faiss::Index *>(p); }

// The HNSW inside an index (directly or under an IDMap), or NULL.
faiss::IndexHNSW *sc_hnsw_of(faiss::Index *ix)
{
    if (auto *h = dynamic_cast<faiss::IndexHNSW *>(ix))
        return h;
    if (auto *m = dynamic_cast<faiss::IndexIDMap *>(ix))
        return dynamic_cast<faiss::IndexHNSW *>(m->index);
    return nullptr;
}

} // namespace

extern "C" {

const char *faiss_get_last_error()
{
    return sc_faiss_last_error.empty() ? nullptr : sc_faiss_last_error.c_str();
}

// ---- index_factory_c.h ----

int faiss_index_factory(FaissIndex **p_index, int d, const char *description,
                        FaissMetricType metric)
{
    SC_FAISS_TRY
    faiss::Index *ix = sc_fast_factory(d, description, metric);
    if (!ix)
        ix = faiss::index_factory(d, description, static_cast<faiss::MetricType>(metric));
    *p_index = reinterpret_cast<FaissIndex *>(ix);
    SC_FAISS_CATCH
}

// ---- Index_c.h ----

void faiss_Index_free(FaissIndex *obj) { delete sc_ix(obj); }

int faiss_Index_d(const FaissIndex *index) { return sc_cix(index)->d; }

int faiss_Index_is_trained(const FaissIndex *index) { return sc_cix(index)->is_trained ? 1 : 0; }

idx_t faiss_Index_ntotal(const FaissIndex *index) { return sc_cix(index)->ntotal; }

FaissMetricType faiss_Index_metric_type(const FaissIndex *index)
{
    return static_cast<FaissMetricType>(sc_cix(index)->metric_type);
}

int faiss_Index_train(FaissIndex *index, idx_t n, const float *x)
{
    SC_FAISS_TRY
    sc_ix(index)->train(n, x);
    SC_FAISS_CATCH
}

int faiss_Index_add(FaissIndex *index, idx_t n, const float *x)
{
    SC_FAISS_TRY
    sc_ix(index)->add(n, x);
    SC_FAISS_CATCH
}

int faiss_Index_add_with_ids(FaissIndex *index, idx_t n, const float *x, const idx_t *xids)
{
    SC_FAISS_TRY
    sc_ix(index)->add_with_ids(n, x, xids);
    SC_FAISS_CATCH
}

int faiss_Index_search(const FaissIndex *index, idx_t n, const float *x, idx_t k,
                       float *distances, idx_t *labels)
{
    SC_FAISS_TRY
    sc_cix(index)->search(n, x, k, distances, labels);
    SC_FAISS_CATCH
}

int faiss_Index_reset(FaissIndex *index)
{
    SC_FAISS_TRY
    sc_ix(index)->reset();
    SC_FAISS_CATCH
}

int faiss_Index_remove_ids(FaissIndex *index, const FaissIDSelector *sel, size_t *n_removed)
{
    SC_FAISS_TRY
    size_t n = sc_ix(index)->remove_ids(*reinterpret_cast<const faiss::IDSelector *>(sel));
    if (n_removed)
        *n_removed = n;
    SC_FAISS_CATCH
}

int faiss_Index_reconstruct(const FaissIndex *index, idx_t key, float *recons)
{
    SC_FAISS_TRY
    sc_cix(index)->reconstruct(key, recons);
    SC_FAISS_CATCH
}

int faiss_Index_reconstruct_n(const FaissIndex *index, idx_t i0, idx_t ni, float *recons)
{
    SC_FAISS_TRY
    sc_cix(index)->reconstruct_n(i0, ni, recons);
    SC_FAISS_CATCH
}

// ---- index_io_c.h ----

int faiss_write_index(const FaissIndex *idx, FILE *f)
{
    SC_FAISS_TRY
    faiss::write_index(sc_cix(idx), f);
    SC_FAISS_CATCH
}

int faiss_read_index(FILE *f, int io_flags, FaissIndex **p_out)
{
    SC_FAISS_TRY
    *p_out = nullptr;
    faiss::Index *ix = faiss::read_index(f, io_flags);
    try {
        ix = sc_fast_loaded(ix);
    } catch (...) {
        delete ix;
        throw;
    }
    *p_out = reinterpret_cast<FaissIndex *>(ix);
    SC_FAISS_CATCH
}

// ---- MetaIndexes_c.h ----

FaissIndexIDMap *faiss_IndexIDMap_cast(FaissIndex *index)
{
    return reinterpret_cast<FaissIndexIDMap *>(dynamic_cast<faiss::IndexIDMap *>(sc_ix(index)));
}

void faiss_IndexIDMap_id_map(FaissIndexIDMap *index, idx_t **p_id_map, size_t *p_size)
{
    auto *m = reinterpret_cast<faiss::IndexIDMap *>(index);
    if (p_id_map)
        *p_id_map = m->id_map.data();
    if (p_size)
        *p_size = m->id_map.size();
}

FaissIndex *faiss_IndexIDMap_sub_index(FaissIndexIDMap *index)
{
    return reinterpret_cast<FaissIndex *>(reinterpret_cast<faiss::IndexIDMap *>(index)->index);
}

// ---- impl/AuxIndexStructures_c.h ----

void faiss_IDSelector_free(FaissIDSelector *obj)
{
    delete reinterpret_cast<faiss::IDSelector *>(obj);
}

int faiss_IDSelectorBatch_new(FaissIDSelectorBatch **p_sel, size_t n, const idx_t *indices)
{
    SC_FAISS_TRY
    *p_sel = reinterpret_cast<FaissIDSelectorBatch *>(new faiss::IDSelectorBatch(n, indices));
    SC_FAISS_CATCH
}

// ---- AutoTune_c.h ----

int faiss_ParameterSpace_new(FaissParameterSpace **space)
{
    SC_FAISS_TRY
    *space = reinterpret_cast<FaissParameterSpace *>(new faiss::ParameterSpace());
    SC_FAISS_CATCH
}

void faiss_ParameterSpace_free(FaissParameterSpace *obj)
{
    delete reinterpret_cast<faiss::ParameterSpace *>(obj);
}

// The official parameters (efSearch, nprobe, …) go to faiss::ParameterSpace. "efConstruction" is
// an extension of this file (FAISS 1.7's ParameterSpace has no setter for it and its C API no
// HNSW header): a real libfaiss_c refuses it and the caller keeps the default.
int faiss_ParameterSpace_set_index_parameter(const FaissParameterSpace *space, FaissIndex *index,
                                             const char *name, double value)
{
    SC_FAISS_TRY
    if (std::string(name) == "efConstruction") {
        faiss::IndexHNSW *h = sc_hnsw_of(sc_ix(index));
        if (!h)
            throw std::invalid_argument("efConstruction: not an HNSW index");
        h->hnsw.efConstruction = static_cast<int>(value);
        return 0;
    }
    reinterpret_cast<const faiss::ParameterSpace *>(space)->set_index_parameter(sc_ix(index),
                                                                                name, value);
    SC_FAISS_CATCH
}

} // extern "C"
