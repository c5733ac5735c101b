/*
 * commit.c - group commit of submissions.
 *
 * Answering Submit only after the message is durable costs one fsync per
 * transaction.  Worker threads therefore hand their submissions to one
 * committer thread, which writes every submission waiting at that moment
 * in ONE transaction (wse_store_enqueue), then wakes their workers with
 * each one's own outcome.  Under load many submissions share an fsync;
 * alone, a submission waits for nothing but its own commit.
 *
 * A submission may also be handed over without waiting
 * (wsed_commit_async): the committer then calls its completion after the
 * commit, and the worker that handed it over is free for the next
 * request meanwhile.
 */
#include <stdlib.h>
#include <string.h>

#include "wsed.h"

#define BATCH_MAX 128

/* A waiting submission: a worker waiting on its own condition (so that
 * a commit wakes exactly the workers whose submissions it wrote), or a
 * completion to call (fn != NULL). */
struct commit_req {
	const wse_submission *sub;
	wse_status st;
	int done;
	pthread_cond_t cv;
	struct commit_req *next;
	wsed_commit_fn fn;
	void *arg;
};

/* What a submission's outcome in the store means to its sender. */
static wse_status
outcome(wse_status st)
{
	if (st == WSE_ERR_REPLAY)
		return wse_err(st, "message was already submitted");
	if (st != WSE_OK)
		return wse_err(st, "cannot queue the message durably");
	return WSE_OK;
}

/* Queue r for the committer; WSE_ERR_TEMPFAIL when it is stopping.
 * Lock held. */
static wse_status
commit_put(struct wsed *s, struct commit_req *r)
{
	if (s->commit_stop)
		return wse_err(WSE_ERR_TEMPFAIL, "server is stopping");
	*s->commit_tail = r;
	s->commit_tail = &r->next;
	pthread_cond_signal(&s->commit_work);
	return WSE_OK;
}

wse_status
wsed_commit_async(struct wsed *s, const wse_submission *sub,
    wsed_commit_fn fn, void *arg)
{
	struct commit_req *r;
	wse_status st;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	r->sub = sub;
	r->st = WSE_ERR_INTERNAL;
	r->fn = fn;
	r->arg = arg;
	pthread_mutex_lock(&s->commit_lock);
	st = commit_put(s, r);
	pthread_mutex_unlock(&s->commit_lock);
	if (st != WSE_OK)
		free(r);
	return st;
}

wse_status
wsed_commit(struct wsed *s, const wse_submission *sub)
{
	struct commit_req r;
	wse_status st;

	memset(&r, 0, sizeof(r));
	r.sub = sub;
	r.st = WSE_ERR_INTERNAL;
	pthread_cond_init(&r.cv, NULL);
	pthread_mutex_lock(&s->commit_lock);
	if ((st = commit_put(s, &r)) == WSE_OK)
		while (!r.done)
			pthread_cond_wait(&r.cv, &s->commit_lock);
	pthread_mutex_unlock(&s->commit_lock);
	pthread_cond_destroy(&r.cv);
	return st != WSE_OK ? st : outcome(r.st);
}

void *
wsed_commit_main(void *arg)
{
	struct wsed *s = arg;
	struct commit_req *batch[BATCH_MAX];
	wse_submission subs[BATCH_MAX];
	wse_status st, one[BATCH_MAX];
	size_t n, i;

	(void)pthread_setname_np(pthread_self(), "wsed-commit");
	pthread_mutex_lock(&s->commit_lock);
	for (;;) {
		while (s->commit_head == NULL && !s->commit_stop)
			pthread_cond_wait(&s->commit_work, &s->commit_lock);
		if (s->commit_head == NULL)
			break;
		for (n = 0; n < BATCH_MAX && s->commit_head != NULL; n++) {
			batch[n] = s->commit_head;
			if ((s->commit_head = batch[n]->next) == NULL)
				s->commit_tail = &s->commit_head;
			subs[n] = *batch[n]->sub;
		}
		pthread_mutex_unlock(&s->commit_lock);
		st = wse_store_enqueue(s->store, subs, n, s->now(), s->lifetime,
		    one);
		s->commits++;
		s->committed += n;
		wse_err_clear();
		/* The completions first, on this thread: each answers its
		 * request (docs/performance.md). */
		for (i = 0; i < n; i++) {
			if (batch[i]->fn == NULL)
				continue;
			batch[i]->fn(s, batch[i]->arg, outcome(st != WSE_OK ?
			    st : one[i]));
			wse_err_clear();
			free(batch[i]);
			batch[i] = NULL;
		}
		pthread_mutex_lock(&s->commit_lock);
		for (i = 0; i < n; i++) {
			if (batch[i] == NULL)
				continue;
			batch[i]->st = st != WSE_OK ? st : one[i];
			batch[i]->done = 1;
			pthread_cond_signal(&batch[i]->cv);
		}
	}
	pthread_mutex_unlock(&s->commit_lock);
	return NULL;
}

void
wsed_commit_stop(struct wsed *s)
{
	pthread_mutex_lock(&s->commit_lock);
	s->commit_stop = 1;
	pthread_cond_broadcast(&s->commit_work);
	pthread_mutex_unlock(&s->commit_lock);
}
