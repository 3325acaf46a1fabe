/*
 * Issuance-policy plugins: a site's own rules, asked after the CA's own
 * checks and before it signs. [ca] Policies lists instances; each is a
 * [policy.NAME] section whose Module names the shared object. A plugin
 * sees the ledger only through the host's issued_for_subject().
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ca.h"
#include "log.h"
#include "plugin_load.h"

static struct ca_policy *
policy_of(const struct scepd_plugin_host *host)
{
	return (struct ca_policy *)((char *)host -
	    offsetof(struct ca_policy, host));
}

static const char *
policy_config_get(const struct scepd_plugin_host *host, const char *key)
{
	struct ca_policy *p = policy_of(host);
	char section[128];

	snprintf(section, sizeof(section), CONFIG_SECTION_POLICY "%s", p->name);
	return config_pairs_get(p->ca->config, section, key);
}

static void
policy_log(
    const struct scepd_plugin_host *host, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	plugin_log_v("policy ", host->instance, level, fmt, ap);
	va_end(ap);
}

/* Within the signing transaction: what a policy sees is what is true. */
static int
policy_issued_for_subject(const struct scepd_plugin_host *host,
    const char *subject,
    int (*each)(void *ctx, const struct scepd_issued_certificate *c), void *ctx)
{
	struct ca_policy *p = policy_of(host);
	const struct ca *ca = p->ca;
	MDB_cursor *cur = NULL;
	char subject_key[CA_SUBJECT_KEY_MAX + 1];
	MDB_val key, val;
	int e, n = 0, revoked;

	if (p->txn == NULL || subject[0] == '\0')
		return -1;
	key.mv_size = ca_subject_key(subject, strlen(subject), subject_key);
	key.mv_data = subject_key;
	if (mdb_cursor_open(p->txn, ca->subjects, &cur) != 0)
		return -1;
	for (e = mdb_cursor_get(cur, &key, &val, MDB_SET_KEY); e == 0;
	     e = mdb_cursor_get(cur, &key, &val, MDB_NEXT_DUP)) {
		struct scepd_issued_certificate c;
		struct ca_ledger_view v;
		char serial[CA_SERIAL_HEX];
		MDB_val skey = val, rec;

		if (val.mv_size >= sizeof(serial) ||
		    mdb_get(p->txn, ca->certs, &skey, &rec) != 0 ||
		    ca_ledger_view(rec.mv_data, rec.mv_size, &v) != 0) {
			n = -1; /* unreadable: undecided, not "none" */
			break;
		}
		memcpy(serial, val.mv_data, val.mv_size);
		serial[val.mv_size] = '\0';
		/* A revoked certificate is no longer the device's: its
		 * replacement is not a second one. One on hold still is:
		 * released (scepctl unrevoke), it would be. */
		if ((revoked = ca_crl_revoked_for_good(ca, p->txn, serial)) <
		    0) {
			n = -1; /* unreadable: undecided, not "none" */
			break;
		}
		/* Nor is one of a CA this one replaced without vouching for
		 * it (PreviousCACertificate): relying parties no longer
		 * take it, and it does not renew. */
		if (revoked > 0 || !ca_ledger_vouched(ca, v.der, v.der_len))
			continue;
		c.serial = serial;
		c.issued_at = v.issued_at;
		c.not_after = v.not_after;
		n++;
		if (each(ctx, &c) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return n;
}

static int
policy_load_one(struct ca *ca, const char *name)
{
	struct ca_policy *p = &ca->policies[ca->npolicies];
	char section[128], err[512] = "", *path;
	const char *module;

	snprintf(section, sizeof(section), CONFIG_SECTION_POLICY "%s", name);
	if (!plugin_instance_name_ok(name)) {
		fprintf(stderr,
		    "scepd-ca: [ca] Policies: '%s': a policy name has "
		    "letters, digits, '-' and '_' only\n",
		    name);
		return -1;
	}
	module = config_pairs_get(ca->config, section, "Module");
	if (module == NULL || module[0] == '\0') {
		fprintf(stderr,
		    "scepd-ca: [%s] Module: is required (policy %s is listed "
		    "in [ca] Policies)\n",
		    section, name);
		return -1;
	}
	memset(p, 0, sizeof(*p));
	p->ca = ca;
	if ((p->name = strdup(name)) == NULL)
		return -1;
	ca->npolicies++;
	path = plugin_module_path(
	    module, ca->settings.plugin_dir, ca->config->basedir);
	if (path == NULL)
		return -1;
	p->p = plugin_open(
	    path, SCEPD_ISSUANCE_POLICY_SYMBOL, &p->dl, err, sizeof(err));
	free(path);
	if (p->p == NULL) {
		fprintf(stderr, "scepd-ca: [%s] Module = %s: %s\n", section,
		    module, err);
		return -1;
	}
	if (p->p->name == NULL || p->p->keys == NULL || p->p->init == NULL ||
	    p->p->check == NULL || p->p->destroy == NULL) {
		fprintf(stderr,
		    "scepd-ca: [%s] Module = %s: incomplete table\n", section,
		    module);
		p->p = NULL;
		return -1;
	}
	if (plugin_check_keys(
	        ca->config, section, p->p->keys, "scepd-ca", p->p->name) != 0) {
		p->p = NULL;
		return -1;
	}
	p->host.abi_version = SCEPD_PLUGIN_ABI_VERSION;
	p->host.size = sizeof(p->host);
	p->host.instance = p->name;
	p->host.config_get = policy_config_get;
	p->host.log = policy_log;
	p->host.issued_for_subject = policy_issued_for_subject;
	p->host.time_left_ms = plugin_time_left_ms;
	if (p->p->init(&p->host, &p->state, err, sizeof(err)) != 0) {
		fprintf(stderr, "scepd-ca: [%s] %s\n", section, err);
		p->p = NULL; /* no destroy for what did not start */
		return -1;
	}
	log_info("issuance policy %s ready (%s)", name, p->p->name);
	return 0;
}

int
ca_policies_load(struct ca *ca, const char *config_file)
{
	char *copy, *tok, *save = NULL;
	size_t count = 0;
	int rc = 0;

	if ((ca->config = calloc(1, sizeof(*ca->config))) == NULL ||
	    config_load_pairs(config_file, CONFIG_SECTION_POLICY, ca->config) !=
	        0)
		return -1;
	if ((copy = strdup(ca->settings.policies)) == NULL)
		return -1;
	for (char *p = copy; *p != '\0'; p++)
		count += *p == ' ' || *p == ',';
	ca->policies = calloc(count + 2, sizeof(*ca->policies));
	for (tok = ca->policies ? strtok_r(copy, " ,", &save) : NULL;
	     tok != NULL && rc == 0; tok = strtok_r(NULL, " ,", &save))
		rc = policy_load_one(ca, tok);
	free(copy);
	/* A section the list does not name judges nothing: an operator who
	 * wrote it but not the Policies line would be issued what it
	 * refuses, without a word. */
	for (size_t i = 0; rc == 0 && i < ca->config->n; i++) {
		const char *name =
		    ca->config->pair[i].section + strlen(CONFIG_SECTION_POLICY);
		size_t j = 0;

		while (j < ca->npolicies &&
		    strcasecmp(ca->policies[j].name, name) != 0)
			j++;
		if (j == ca->npolicies) {
			fprintf(stderr,
			    "scepd-ca: [%s] is not in [ca] Policies (now "
			    "'%s'): add %s there, or remove the section\n",
			    ca->config->pair[i].section, ca->settings.policies,
			    name);
			rc = -1;
		}
	}
	return ca->policies != NULL ? rc : -1;
}

void
ca_policies_free(struct ca *ca)
{
	for (size_t i = 0; i < ca->npolicies; i++) {
		struct ca_policy *p = &ca->policies[i];

		if (p->p != NULL)
			p->p->destroy(p->state);
		if (p->dl != NULL)
			dlclose(p->dl);
		free(p->name);
	}
	free(ca->policies);
	ca->policies = NULL;
	ca->npolicies = 0;
	if (ca->config != NULL) {
		config_pairs_free(ca->config);
		free(ca->config);
		ca->config = NULL;
	}
}

int
ca_policies_check_request(const struct ca *ca, MDB_txn *txn, X509_REQ *csr,
    const uint8_t *csr_der, size_t csr_len, const struct ca_template *tpl,
    char **sans, const char *txid, const char *requester, time_t now,
    int64_t deadline_ms, struct ca_refusal *refusal, int *unavailable,
    struct rpc_arena *arena)
{
	static const char *const no_sans[] = {NULL};
	struct scepd_issuance_request pr;
	int rc;
	X509_NAME *subject = ca_issue_subject(tpl, csr);

	*unavailable = 0;
	if (subject == NULL) {
		*unavailable = 1;
		snprintf(refusal->why, sizeof(refusal->why),
		    "the subject cannot be built");
		return -1;
	}
	memset(&pr, 0, sizeof(pr));
	pr.subject = ca_subject_line(subject, arena);
	pr.sans = sans != NULL ? (const char *const *)sans : no_sans;
	pr.template_name = tpl->name;
	pr.transaction_id = txid;
	pr.requester = requester != NULL ? requester : "";
	pr.csr_der = csr_der;
	pr.csr_der_len = csr_len;
	pr.now = (long long)now;
	X509_NAME_free(subject);
	plugin_call_deadline(deadline_ms);
	rc = ca_policies_check(ca, txn, &pr, refusal, unavailable);
	plugin_call_deadline(0);
	return rc;
}

int
ca_policies_check(const struct ca *ca, MDB_txn *txn,
    const struct scepd_issuance_request *req, struct ca_refusal *refusal,
    int *unavailable)
{
	*unavailable = 0;
	for (size_t i = 0; i < ca->npolicies; i++) {
		struct ca_policy *p = &ca->policies[i];
		char why[200] = "";
		enum scepd_verdict v;

		p->txn = txn;
		v = p->p->check(p->state, req, why, sizeof(why));
		p->txn = NULL;
		why[sizeof(why) - 1] = '\0';
		if (v == SCEPD_VERDICT_ALLOW)
			continue;
		refusal->fail_info = SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST;
		snprintf(refusal->why, sizeof(refusal->why), "policy %s: %s",
		    p->name, why[0] ? why : "refused");
		*unavailable = v == SCEPD_VERDICT_UNAVAILABLE;
		return -1;
	}
	return 0;
}
