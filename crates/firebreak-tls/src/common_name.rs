//! The subject common name (CN) of an X.509 certificate.
//!
//! A few lines of DER walking rather than a full X.509 parser: the
//! certificate has already been verified by rustls (webpki) when this is
//! asked, and only the subject's CN is needed. Like Go's `crypto/x509`
//! (and so etcd), the last CN of the subject wins.

/// One DER element: its tag and contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form: 1 to 4 length bytes; 0x80 (indefinite) is not DER.
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// 2.5.4.3, id-at-commonName.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// The subject's common name of the DER certificate `der`, if it has one.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (SEQUENCE, cert, _) = element(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    // version [0] EXPLICIT, optional.
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    // serialNumber, signature, issuer, validity; then subject.
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (SEQUENCE, mut rdns, _) = element(rest)? else {
        return None;
    };
    let mut found = None;
    while !rdns.is_empty() {
        let (SET, mut attributes, next) = element(rdns)? else {
            return None;
        };
        rdns = next;
        while !attributes.is_empty() {
            let (SEQUENCE, attribute, next) = element(attributes)? else {
                return None;
            };
            attributes = next;
            let (OID, oid, value) = element(attribute)? else {
                return None;
            };
            if oid == COMMON_NAME {
                let (tag, value, _) = element(value)?;
                found = Some(decode_string(tag, value)?);
            }
        }
    }
    found
}

fn decode_string(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String.
        0x0c | 0x13 | 0x16 => String::from_utf8(value.to_vec()).ok(),
        // TeletexString, read as Latin-1 as Go does.
        0x14 => Some(value.iter().map(|b| char::from(*b)).collect()),
        // BMPString: UTF-16BE.
        0x1e => {
            let pairs = value.chunks_exact(2);
            if !pairs.remainder().is_empty() {
                return None;
            }
            let units: Vec<u16> = pairs.map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DnType, KeyPair};

    use super::*;

    fn cert_with(names: &[(DnType, &str)]) -> Vec<u8> {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (ty, value) in names {
            params.distinguished_name.push(ty.clone(), *value);
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_subject_common_name_is_found_among_other_attributes() {
        let der = cert_with(&[
            (DnType::CountryName, "NL"),
            (DnType::OrganizationName, "Firebreak"),
            (DnType::CommonName, "alice"),
        ]);
        assert_eq!(common_name(&der).as_deref(), Some("alice"));
        let der = cert_with(&[(DnType::CommonName, "ünïcødé root")]);
        assert_eq!(common_name(&der).as_deref(), Some("ünïcødé root"));
        let der = cert_with(&[(DnType::OrganizationName, "no cn")]);
        assert_eq!(common_name(&der), None);
    }

    #[test]
    fn truncated_or_mangled_certificates_give_none_without_panicking() {
        let der = cert_with(&[(DnType::CommonName, "alice")]);
        for len in 0..der.len() {
            let _ = common_name(&der[..len]);
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5000 {
            let mut mangled = der.clone();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state as usize) % mangled.len();
                mangled[at] = (state >> 32) as u8;
            }
            let _ = common_name(&mangled);
        }
        assert_eq!(common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(common_name(&[0x30, 0x80, 0x00, 0x00]), None);
    }
}
