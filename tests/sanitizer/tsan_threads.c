/* tsan_threads.c - C11 threads over pthreads, for ThreadSanitizer builds only (`scripts/test
 * --tsan`).
 *
 * Debian's librdkafka uses glibc's C11 threads: thrd_create(), mtx_lock(), cnd_wait() and the
 * rest call glibc's internal pthread functions and so bypass ThreadSanitizer's interceptors (gcc
 * 12's libtsan has none for them). Its threads then run without TSan's thread state, and crash in
 * its allocator on their first malloc, and its locks are invisible, so every access they order
 * looks like a race. Defined in the executable, these take the library's calls and do the same
 * through the pthread functions TSan intercepts. glibc lays mtx_t, cnd_t and once_flag out as
 * pthread_mutex_t, pthread_cond_t and pthread_once_t, and reads a thread's int result as
 * (int)(intptr_t) of its void * one, as here. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

_Static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t), "mtx_t is a pthread_mutex_t");
_Static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t), "cnd_t is a pthread_cond_t");
_Static_assert(sizeof(once_flag) == sizeof(pthread_once_t), "once_flag is a pthread_once_t");

typedef struct {
    thrd_start_t fn;
    void *arg;
} tsan_thrd_start_t;

static int tsan_thrd_err(int rc)
{
    switch (rc) {
    case 0:
        return thrd_success;
    case ETIMEDOUT:
        return thrd_timedout;
    case EBUSY:
        return thrd_busy;
    case ENOMEM:
    case EAGAIN:
        return thrd_nomem;
    default:
        return thrd_error;
    }
}

static void *tsan_thrd_main(void *p)
{
    tsan_thrd_start_t s = *(tsan_thrd_start_t *)p;
    free(p);
    return (void *)(intptr_t)s.fn(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg)
{
    tsan_thrd_start_t *s = malloc(sizeof *s);
    if (!s)
        return thrd_nomem;
    s->fn = fn;
    s->arg = arg;
    int rc = pthread_create((pthread_t *)thr, NULL, tsan_thrd_main, s);
    if (rc != 0)
        free(s);
    return tsan_thrd_err(rc);
}

int thrd_join(thrd_t thr, int *res)
{
    void *v = NULL;
    int rc = pthread_join((pthread_t)thr, &v);
    if (rc == 0 && res)
        *res = (int)(intptr_t)v;
    return tsan_thrd_err(rc);
}

int mtx_init(mtx_t *m, int type)
{
    pthread_mutexattr_t a;
    if (pthread_mutexattr_init(&a) != 0)
        return thrd_error;
    if (type & mtx_recursive)
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    int rc = pthread_mutex_init((pthread_mutex_t *)m, &a);
    pthread_mutexattr_destroy(&a);
    return tsan_thrd_err(rc);
}

int mtx_lock(mtx_t *m)
{
    return tsan_thrd_err(pthread_mutex_lock((pthread_mutex_t *)m));
}

int mtx_unlock(mtx_t *m)
{
    return tsan_thrd_err(pthread_mutex_unlock((pthread_mutex_t *)m));
}

void mtx_destroy(mtx_t *m)
{
    pthread_mutex_destroy((pthread_mutex_t *)m);
}

int cnd_init(cnd_t *c)
{
    return tsan_thrd_err(pthread_cond_init((pthread_cond_t *)c, NULL));
}

int cnd_signal(cnd_t *c)
{
    return tsan_thrd_err(pthread_cond_signal((pthread_cond_t *)c));
}

int cnd_broadcast(cnd_t *c)
{
    return tsan_thrd_err(pthread_cond_broadcast((pthread_cond_t *)c));
}

int cnd_wait(cnd_t *c, mtx_t *m)
{
    return tsan_thrd_err(pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m));
}

int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m, const struct timespec *restrict ts)
{
    return tsan_thrd_err(
        pthread_cond_timedwait((pthread_cond_t *)c, (pthread_mutex_t *)m, ts));
}

void cnd_destroy(cnd_t *c)
{
    pthread_cond_destroy((pthread_cond_t *)c);
}

void call_once(once_flag *flag, void (*fn)(void))
{
    pthread_once((pthread_once_t *)flag, fn);
}
