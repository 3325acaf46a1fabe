/*
 * The RA's routes: which handler answers which request, for whom (main.c
 * serves them; test_routes checks who may ask what).
 */
#include "ra.h"

const struct rpc_route ra_routes[] = {
    {SCEP__V1__REQUEST__BODY_GET_CA_CERT, "GetCACert", "frontend",
        ra_handle_get_ca_cert},
    {SCEP__V1__REQUEST__BODY_PKI_OPERATION, "PKIOperation", "frontend",
        ra_handle_pki_operation},
    {SCEP__V1__REQUEST__BODY_SIGN_PROFILE, "SignProfile", "frontend",
        ra_handle_sign_profile},
    {SCEP__V1__REQUEST__BODY_METRICS, "Metrics", "frontend", ra_handle_metrics},
    {SCEP__V1__REQUEST__BODY_GET_CRL, "GetCRL", "frontend", ra_handle_get_crl},
    {SCEP__V1__REQUEST__BODY_HEALTH, "Health", "scepd scepctl " RPC_PEER_SELF,
        rpc_handle_health},
    {0, NULL, NULL, NULL},
};
