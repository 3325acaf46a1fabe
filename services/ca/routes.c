/*
 * The CA's routes: which handler answers which request, for whom (main.c
 * serves them with one worker, the service itself; the fuzz target
 * fuzz_ca_rpc hands them requests in process).
 */
#include "ca.h"

/* Health (rpc_handle_health) is answered in the one worker, between
 * batches, so that a CA stuck in its key store (an HSM that hangs) stays
 * silent. */
const struct rpc_route ca_routes[] = {
    {SCEP__V1__REQUEST__BODY_SIGN, "Sign", "ra", ca_handle_sign},
    {SCEP__V1__REQUEST__BODY_LEDGER_LIST, "LedgerList", "scepctl",
        ca_handle_ledger_list},
    {SCEP__V1__REQUEST__BODY_LEDGER_SHOW, "LedgerShow", "scepctl ra",
        ca_handle_ledger_show},
    {SCEP__V1__REQUEST__BODY_REVOKE, "Revoke", "scepctl", ca_handle_revoke},
    {SCEP__V1__REQUEST__BODY_REVOKE_IMPORT, "RevokeImport", "scepctl",
        ca_handle_revoke_import},
    {SCEP__V1__REQUEST__BODY_POLL, "Poll", "ra", ca_handle_poll},
    {SCEP__V1__REQUEST__BODY_DECIDE, "Decide", "scepctl", ca_handle_decide},
    {SCEP__V1__REQUEST__BODY_GET_CRL, "GetCRL", "ra scepctl",
        ca_handle_get_crl},
    {SCEP__V1__REQUEST__BODY_HEALTH, "Health", "scepd scepctl " RPC_PEER_SELF,
        rpc_handle_health},
#ifdef SCEPD_TEST_HOOKS
    {SCEP__V1__REQUEST__BODY_SANDBOX_PROBE, "SandboxProbe", "scepctl",
        ca_handle_sandbox_probe},
#endif
    {0, NULL, NULL, NULL},
};
