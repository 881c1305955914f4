# The one native part: ECDSA verification of CSR signatures without OpenSSL's redundant full
# key check (provisioning/pki/native/ecdsa-verify.c). Built by `npm ci` / `npm install`
# (the install script) against the OpenSSL inside Node.js.
{
  "targets": [
    {
      "target_name": "ecdsa_verify",
      "sources": ["provisioning/pki/native/ecdsa-verify.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror"]
    }
  ]
}
