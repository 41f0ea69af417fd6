#include "net/tls.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"

SSL_CTX *rtmd_tls_ctx_from_config(const struct rtmd_config *cfg)
{
    char err[512], cert[4096], key[4096];
    if (cfg->tls_cert) {
        snprintf(cert, sizeof(cert), "%s", cfg->tls_cert);
        snprintf(key, sizeof(key), "%s", cfg->tls_key);
    } else {
        snprintf(cert, sizeof(cert), "%s/tls-cert.pem", cfg->data_dir);
        snprintf(key, sizeof(key), "%s/tls-key.pem", cfg->data_dir);
        if (access(cert, R_OK) != 0 || access(key, R_OK) != 0) {
            if (rtmd_tls_make_self_signed(cert, key, err, sizeof(err)) < 0) {
                rtmd_log_error("tls", "self-signed certificate: %s", err);
                return NULL;
            }
            rtmd_log_info("tls", "made a self-signed certificate: %s", cert);
        }
    }
    SSL_CTX *ctx = rtmd_tls_server_ctx(cert, key, err, sizeof(err));
    if (!ctx)
        rtmd_log_error("tls", "%s", err);
    return ctx;
}

static void ssl_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s: %s", what, buf);
    ERR_clear_error();
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const unsigned char http11[] = "\x08http/1.1";
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, http11, sizeof(http11) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

SSL_CTX *rtmd_tls_server_ctx(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_error(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    rtmd_tls_tickets_apply(ctx);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        ssl_error(err, errlen, cert_path);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ssl_error(err, errlen, key_path);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int add_ext(X509 *cert, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (!ext)
        return -1;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

int rtmd_tls_make_self_signed(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
    int rc = -1;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    FILE *f = NULL;
    if (!key || !cert) {
        ssl_error(err, errlen, "key generation");
        goto out;
    }
    unsigned char serial[16];
    RAND_bytes(serial, sizeof(serial));
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
    BN_free(bn);
    X509_set_version(cert, 2);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 825L * 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME *name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"rtmd", -1, -1, 0);
    X509_set_issuer_name(cert, name);
    if (add_ext(cert, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1") < 0 ||
        add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        add_ext(cert, NID_ext_key_usage, "serverAuth") < 0) {
        ssl_error(err, errlen, "certificate extensions");
        goto out;
    }
    if (!X509_sign(cert, key, EVP_sha256())) {
        ssl_error(err, errlen, "signing the certificate");
        goto out;
    }
    int fd = open(key_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        snprintf(err, errlen, "%s: cannot write", key_path);
        if (fd >= 0)
            close(fd);
        goto out;
    }
    if (!PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) || fclose(f) != 0) {
        f = NULL;
        snprintf(err, errlen, "%s: cannot write", key_path);
        goto out;
    }
    f = fopen(cert_path, "w");
    if (!f || !PEM_write_X509(f, cert) || fclose(f) != 0) {
        f = NULL;
        snprintf(err, errlen, "%s: cannot write", cert_path);
        goto out;
    }
    f = NULL;
    rc = 0;
out:
    if (f)
        fclose(f);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}
