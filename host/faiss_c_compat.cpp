// faiss_c_compat.cpp - the subset of FAISS's official C API (faiss/c_api/*.h) that host/cache.c
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
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

#include <faiss/AutoTune.h>
#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>
#include <faiss/utils/Heap.h>

extern "C" {
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
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
        h = new faiss::IndexHNSW(new ScFlatIP(d), M);
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
