/*
 * testpki.c - a complete PKI minted at test time (see testpki.h).
 */
#include "testpki.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "err.h"
#include "testutil.h"

#define DAY 86400

static const char *const domain_names[3] = { "a.test", "b.test",
    "c.test" };

/* Write len bytes to path (test fixture files; not atomic). */
static wse_status
put_file(const char *path, const void *data, size_t len, mode_t mode)
{
	FILE *f;
	wse_status st = WSE_OK;

	if ((f = fopen(path, "wx")) == NULL)
		return wse_err(WSE_ERR_IO, "cannot create %s: %s", path,
		    strerror(errno));
	if (len > 0 && fwrite(data, 1, len, f) != len)
		st = wse_err(WSE_ERR_IO, "cannot write %s", path);
	if (fclose(f) != 0 && st == WSE_OK)
		st = wse_err(WSE_ERR_IO, "cannot close %s", path);
	if (st == WSE_OK && chmod(path, mode) != 0)
		st = wse_err(WSE_ERR_IO, "cannot chmod %s", path);
	return st;
}

static wse_status
path_of(char *out, size_t size, const char *dir, const char *sub,
    const char *file)
{
	int n = snprintf(out, size, "%s/%s%s%s", dir, sub, file ? "/" : "",
	    file ? file : "");

	if (n < 0 || (size_t)n >= size)
		return wse_err(WSE_ERR_INVALID, "path too long");
	return WSE_OK;
}

/* The files of one CA (root or domain) in the wse_ca_* layout. */
static wse_status
write_ca(const char *dir, const char *sub, const char *keyname,
    const char *certname, const wse_key *key, const wse_cert *cert,
    const wse_crl *crl)
{
	char path[4096];
	wse_status st;

	if ((st = path_of(path, sizeof(path), dir, sub, NULL)) != WSE_OK)
		return st;
	if (mkdir(path, 0755) != 0)
		return wse_err(WSE_ERR_IO, "cannot create %s: %s", path,
		    strerror(errno));
	if ((st = path_of(path, sizeof(path), dir, sub, keyname)) != WSE_OK ||
	    (st = wse_key_save(key, path)) != WSE_OK ||
	    (st = path_of(path, sizeof(path), dir, sub, certname)) != WSE_OK ||
	    (st = wse_cert_save(cert, path)) != WSE_OK ||
	    (st = path_of(path, sizeof(path), dir, sub, "crl.pem")) != WSE_OK ||
	    (st = wse_crl_save(crl, path)) != WSE_OK ||
	    (st = path_of(path, sizeof(path), dir, sub, "revoked")) != WSE_OK ||
	    (st = put_file(path, "", 0, 0644)) != WSE_OK)
		return st;
	return WSE_OK;
}

static wse_status
write_service(const char *dir, const struct testpki_domain *d)
{
	char path[4096];
	wse_buf *chain = NULL;
	wse_status st;

	if ((chain = wse_buf_new(1 << 20)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "no memory");
	if ((st = path_of(path, sizeof(path), dir, d->name,
	    "service-key.pem")) != WSE_OK ||
	    (st = wse_key_save(d->svc_key, path)) != WSE_OK ||
	    (st = path_of(path, sizeof(path), dir, d->name, "service.pem")) !=
	    WSE_OK ||
	    (st = wse_cert_save(d->svc, path)) != WSE_OK ||
	    (st = wse_cert_to_pem(d->svc, chain)) != WSE_OK ||
	    (st = wse_cert_to_pem(d->ca, chain)) != WSE_OK ||
	    (st = path_of(path, sizeof(path), dir, d->name, "chain.pem")) !=
	    WSE_OK)
		goto out;
	st = put_file(path, wse_buf_data(chain), wse_buf_len(chain), 0644);
out:
	wse_buf_free(&chain);
	return st;
}

wse_status
testpki_init(testpki *p, int64_t now)
{
	const char *hosts[1];
	char mail[64];
	wse_cert_profile pr;
	int i;
	wse_status st;

	memset(p, 0, sizeof(*p));
	p->now = now;
	if ((p->dir = testutil_tmpdir()) == NULL)
		return wse_err(WSE_ERR_IO, "cannot create a temporary directory");

	memset(&pr, 0, sizeof(pr));
	pr.kind = WSE_CERT_ROOT;
	pr.name = "WSEmail Test Root";
	pr.not_before = now - 3600;
	pr.not_after = now + 30 * DAY;
	if ((st = wse_key_generate(&p->root_key)) != WSE_OK ||
	    (st = wse_cert_issue(&pr, p->root_key, NULL, p->root_key,
	    &p->root)) != WSE_OK ||
	    (st = wse_crl_issue(p->root, p->root_key, NULL, 0, now - 3600,
	    now + 7 * DAY, &p->root_crl)) != WSE_OK ||
	    (st = write_ca(p->dir, "root", "key.pem", "cert.pem", p->root_key,
	    p->root, p->root_crl)) != WSE_OK)
		goto fail;

	for (i = 0; i < 3; i++) {
		struct testpki_domain *d = &p->dom[i];

		d->name = domain_names[i];
		memset(&pr, 0, sizeof(pr));
		pr.kind = WSE_CERT_DOMAIN_CA;
		pr.name = d->name;
		pr.not_before = now - 3600;
		pr.not_after = now + 30 * DAY;
		if ((st = wse_key_generate(&d->ca_key)) != WSE_OK ||
		    (st = wse_cert_issue(&pr, d->ca_key, p->root, p->root_key,
		    &d->ca)) != WSE_OK ||
		    (st = wse_crl_issue(d->ca, d->ca_key, NULL, 0, now - 3600,
		    now + 7 * DAY, &d->crl)) != WSE_OK)
			goto fail;
		pr.kind = WSE_CERT_SERVICE;
		snprintf(mail, sizeof(mail), "mail.%s", d->name);
		hosts[0] = mail;
		pr.hosts = hosts;
		pr.nhosts = 1;
		if ((st = wse_key_generate(&d->svc_key)) != WSE_OK ||
		    (st = wse_cert_issue(&pr, d->svc_key, d->ca, d->ca_key,
		    &d->svc)) != WSE_OK ||
		    (st = write_ca(p->dir, d->name, "ca-key.pem", "ca.pem",
		    d->ca_key, d->ca, d->crl)) != WSE_OK ||
		    (st = write_service(p->dir, d)) != WSE_OK)
			goto fail;
	}
	if ((st = testpki_trust(p, 1, 1, 1, &p->trust)) != WSE_OK)
		goto fail;
	return WSE_OK;
fail:
	testpki_free(p);
	return st;
}

void
testpki_free(testpki *p)
{
	int i;

	if (p == NULL)
		return;
	wse_trust_free(&p->trust);
	for (i = 0; i < 3; i++) {
		wse_cert_free(&p->dom[i].svc);
		wse_key_free(&p->dom[i].svc_key);
		wse_crl_free(&p->dom[i].crl);
		wse_cert_free(&p->dom[i].ca);
		wse_key_free(&p->dom[i].ca_key);
	}
	wse_crl_free(&p->root_crl);
	wse_cert_free(&p->root);
	wse_key_free(&p->root_key);
	if (p->dir != NULL) {
		testutil_rmtree(p->dir);
		free(p->dir);
	}
	memset(p, 0, sizeof(*p));
}

wse_status
testpki_trust(const testpki *p, int with_root_crl, int with_a_crl,
    int with_b_crl, wse_trust **trust_r)
{
	wse_trust *t = NULL;
	wse_status st;

	*trust_r = NULL;
	if ((st = wse_trust_new(&t)) != WSE_OK ||
	    (st = wse_trust_add_root(t, p->root)) != WSE_OK ||
	    (with_root_crl &&
	    (st = wse_trust_add_crl(t, p->root_crl)) != WSE_OK) ||
	    (with_a_crl &&
	    (st = wse_trust_add_crl(t, p->dom[0].crl)) != WSE_OK) ||
	    (with_b_crl &&
	    (st = wse_trust_add_crl(t, p->dom[1].crl)) != WSE_OK) ||
	    (st = wse_trust_add_crl(t, p->dom[2].crl)) != WSE_OK) {
		wse_trust_free(&t);
		return st;
	}
	*trust_r = t;
	return WSE_OK;
}

wse_status
testpki_service(const testpki *p, int d, const char *domain,
    int64_t not_before, int64_t not_after, wse_key **key_r,
    wse_cert **cert_r)
{
	wse_cert_profile pr;
	wse_key *key = NULL;
	wse_cert *cert = NULL;
	wse_status st;

	*key_r = NULL;
	*cert_r = NULL;
	if (d < -1 || d > 2)
		return wse_err(WSE_ERR_INVALID, "testpki: no domain %d", d);
	memset(&pr, 0, sizeof(pr));
	pr.kind = WSE_CERT_SERVICE;
	pr.name = domain;
	pr.not_before = not_before;
	pr.not_after = not_after;
	if ((st = wse_key_generate(&key)) != WSE_OK)
		goto out;
	if (d == -1)
		st = wse_cert_issue(&pr, key, NULL, key, &cert);
	else
		st = wse_cert_issue(&pr, key, p->dom[d].ca, p->dom[d].ca_key,
		    &cert);
	if (st != WSE_OK)
		goto out;
	*key_r = key;
	key = NULL;
	*cert_r = cert;
	cert = NULL;
out:
	wse_cert_free(&cert);
	wse_key_free(&key);
	return st;
}
