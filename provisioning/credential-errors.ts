// Refusals of a client certificate as a credential: on the API (a station's or a device's
// certificate over mutual TLS) and for a renewal over MQTT. The broker's reason for the same
// fact is named in each message.
import { catalogueError } from '../registry/errors.js';

export const CREDENTIAL_ERRORS = {
  client_certificate_untrusted: 'the client certificate does not chain to a CA this service trusts, or is not for TLS client authentication',
  client_certificate_expired: 'the client certificate is outside its validity (and, for a renewal, outside its CA’s renewal window)',
  client_certificate_claim: 'a claim certificate opens claim sessions on MQTT and nothing else: it identifies no device and no station',
  client_certificate_unregistered: 'the client certificate is neither a station’s nor a device’s the registry knows',
  client_certificate_revoked: 'the client certificate (or its station) is revoked',
  client_certificate_inactive: 'the client certificate is not active (deactivated, superseded by a renewal, or pending activation)',
} as const;

export class CredentialError extends catalogueError('CredentialError', CREDENTIAL_ERRORS) {}
