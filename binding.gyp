# The native parts, built by `npm ci` / `npm install` (the install script) against the
# OpenSSL inside Node.js: ECDSA verification of CSR signatures without OpenSSL's redundant full
# key check (provisioning/pki/native/ecdsa-verify.c), and clearing OpenSSL's error queue at
# the TLS edge (registry/native/openssl-errors.c).
{
  "targets": [
    {
      "target_name": "ecdsa_verify",
      "sources": ["provisioning/pki/native/ecdsa-verify.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror"]
    },
    {
      "target_name": "openssl_errors",
      "sources": ["registry/native/openssl-errors.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror"]
    }
  ]
}
