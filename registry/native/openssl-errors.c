// Clears the calling thread's OpenSSL error queue, which every TLS connection of the thread
// shares.
//
// Why this exists: a client certificate chain that OpenSSL refuses during a handshake
// (accepted anyway, so that admission can answer with a CONNACK code) leaves its error on the
// queue. OpenSSL's SSL_get_error reports any error waiting there as a failure of whatever TLS
// call it is asked about, so the next read of a connection that has nothing to read would
// fail that connection with ERR_SSL_EVP_LIB. Node.js clears the queue in some of its TLS
// methods (getPeerCertificate), not on every path; the broker reads the peer's certificate
// from the TLS session instead, which does not, so it clears the queue itself.
#include <node_api.h>
#include <openssl/err.h>

static napi_value clear_errors(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  ERR_clear_error();
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value function;
  if (napi_create_function(env, "clearErrors", NAPI_AUTO_LENGTH, clear_errors, NULL, &function) != napi_ok ||
      napi_set_named_property(env, exports, "clearErrors", function) != napi_ok) {
    return NULL;
  }
  return exports;
}
