// A certs-only CMS message (RFC 5652 §5, the "degenerate" SignedData: no signers, no
// content), what EST returns for /cacerts and /simpleenroll (RFC 7030 §4.1.3, §4.2.3, as
// the Simple PKI Response of RFC 5272 §4.1, whose eContent is absent). Built with
// @peculiar/asn1-cms from certificates already in DER.
import { CertificateChoices, CertificateSet, CMSVersion, ContentInfo, EncapsulatedContentInfo, id_data, id_signedData, SignedData } from '@peculiar/asn1-cms';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';

export function certsOnly(certificatesDer: readonly Buffer[]): Buffer {
  const signedData = new SignedData({
    version: CMSVersion.v1,
    encapContentInfo: new EncapsulatedContentInfo({ eContentType: id_data }),
    certificates: new CertificateSet(certificatesDer.map((der) => new CertificateChoices({ certificate: AsnConvert.parse(der, Certificate) }))),
  });
  return Buffer.from(AsnConvert.serialize(new ContentInfo({ contentType: id_signedData, content: AsnConvert.serialize(signedData) })));
}
