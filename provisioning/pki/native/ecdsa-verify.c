// ECDSA verification of a CSR's signature against its raw public point, for P-256 and P-384.
//
// Why this exists: node:crypto can only verify with a KeyObject, and every way of making one
// from a fresh key (JWK, DER, webcrypto) runs OpenSSL's full public-key check, which includes a
// scalar multiplication by the group order. Each CSR brings a key never seen before, so that
// check alone costs more than half of the signature verification. On P-256 and P-384 the
// cofactor is 1: a point that is on the curve is in the prime-order group, so the full check
// proves nothing the on-curve check (done by EC_POINT_oct2point) has not already proved.
//
// The OpenSSL here is the one inside Node.js: addons may link to it (Node.js docs, "Linking to
// libraries included with Node.js"). The EC_KEY interface is deprecated in OpenSSL 3; it is
// used because it takes a public point and verifies with it without the full check.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <node_api.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <stdlib.h>
#include <string.h>

enum { CURVE_P256 = 0, CURVE_P384 = 1, CURVES = 2 };

typedef struct {
  EC_GROUP *group;
  size_t field_bytes;
} Curve;

typedef struct {
  Curve curves[CURVES];
} Curves;

static void free_curves(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Curves *curves = data;
  for (int i = 0; i < CURVES; i++) EC_GROUP_free(curves->curves[i].group);
  free(curves);
}

static int load_curve(Curve *curve, int nid, size_t field_bytes) {
  curve->field_bytes = field_bytes;
  curve->group = EC_GROUP_new_by_curve_name(nid);
  return curve->group != NULL;
}

// Only the uncompressed form (0x04 ‖ x ‖ y): OpenSSL would also take compressed and hybrid
// points, and a certificate must carry the key exactly as it was requested.
static int is_uncompressed(const Curve *curve, const unsigned char *point, size_t length) {
  return length == 1 + 2 * curve->field_bytes && point[0] == 0x04;
}

enum { OUT_OF_MEMORY = -2, KEY_INVALID = -1, SIGNATURE_INVALID = 0, VERIFIED = 1 };

static int verify_signature(const Curve *curve, const unsigned char *point, size_t point_length,
                            const unsigned char *digest, size_t digest_length, const unsigned char *signature,
                            size_t signature_length) {
  if (!is_uncompressed(curve, point, point_length)) return KEY_INVALID;
  // A refusal leaves errors on this thread's OpenSSL queue, which Node.js shares: the mark and
  // the pop below leave the queue as we found it, so no later node:crypto call reads our
  // errors as its own.
  ERR_set_mark();
  int verdict = OUT_OF_MEMORY;
  EC_KEY *key = EC_KEY_new();
  EC_POINT *public_point = EC_POINT_new(curve->group);
  if (!key || !public_point || !EC_KEY_set_group(key, curve->group)) {
    // verdict stays OUT_OF_MEMORY
  } else if (EC_POINT_oct2point(curve->group, public_point, point, point_length, NULL) != 1 ||
             EC_KEY_set_public_key(key, public_point) != 1) {
    // oct2point refuses a coordinate not below the field prime, and a point off the curve.
    verdict = KEY_INVALID;
  } else {
    // ECDSA_verify refuses a signature whose DER is not the canonical encoding of (r, s), or
    // whose r or s is out of range.
    verdict = ECDSA_verify(0, digest, (int)digest_length, signature, (int)signature_length, key) == 1 ? VERIFIED : SIGNATURE_INVALID;
  }
  EC_POINT_free(public_point);
  EC_KEY_free(key);
  ERR_pop_to_mark();
  return verdict;
}

static int buffer_argument(napi_env env, napi_value value, const unsigned char **data, size_t *length) {
  bool is_buffer = false;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer) return 0;
  return napi_get_buffer_info(env, value, (void **)data, length) == napi_ok;
}

// verify(curve: 0 | 1, point: Buffer, digest: Buffer, signature: Buffer): 1 verified,
// 0 signature invalid, -1 key invalid (not a canonical uncompressed point on the curve),
// -2 out of memory.
static napi_value verify(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  Curves *curves = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 4 ||
      napi_get_instance_data(env, (void **)&curves) != napi_ok || curves == NULL) {
    napi_throw_type_error(env, NULL, "verify(curve, point, digest, signature)");
    return NULL;
  }
  int32_t which = -1;
  const unsigned char *point, *digest, *signature;
  size_t point_length, digest_length, signature_length;
  if (napi_get_value_int32(env, argv[0], &which) != napi_ok || which < 0 || which >= CURVES ||
      !buffer_argument(env, argv[1], &point, &point_length) || !buffer_argument(env, argv[2], &digest, &digest_length) ||
      !buffer_argument(env, argv[3], &signature, &signature_length)) {
    napi_throw_type_error(env, NULL, "verify(curve: 0 | 1, point: Buffer, digest: Buffer, signature: Buffer)");
    return NULL;
  }
  napi_value result;
  napi_create_int32(env, verify_signature(&curves->curves[which], point, point_length, digest, digest_length, signature, signature_length), &result);
  return result;
}

NAPI_MODULE_INIT() {
  Curves *curves = calloc(1, sizeof(Curves));
  if (!curves || !load_curve(&curves->curves[CURVE_P256], NID_X9_62_prime256v1, 32) ||
      !load_curve(&curves->curves[CURVE_P384], NID_secp384r1, 48)) {
    if (curves) free_curves(env, curves, NULL);
    napi_throw_error(env, NULL, "the P-256 and P-384 groups are not available");
    return NULL;
  }
  napi_value function;
  if (napi_set_instance_data(env, curves, free_curves, NULL) != napi_ok ||
      napi_create_function(env, "verify", NAPI_AUTO_LENGTH, verify, NULL, &function) != napi_ok ||
      napi_set_named_property(env, exports, "verify", function) != napi_ok) {
    return NULL;
  }
  return exports;
}
