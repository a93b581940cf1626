//! The signature checks of JWTs, done by `ring`: the crypto library that
//! rustls (the database's and the clients' TLS) already brings.
//!
//! jsonwebtoken 12 leaves its cryptography to a [`CryptoProvider`]. Its
//! two built-in ones are Cargo features that each bring a crypto stack of
//! their own (`rust_crypto`: the `rsa`, `p256`, `p384`, `ed25519-dalek`
//! crates and their big-number and encoding crates; `aws_lc_rs`: the AWS-LC
//! C library); it has none for ring. This one, installed before the first
//! token is checked ([`install`]), keeps one crypto stack in the binary.
//!
//! It does what the service accepts: HS256, ES256 (P-256) and RS256 (keys
//! of 2048 to 8192 bits, ring's bounds: a shorter RSA key is refused). Any
//! other algorithm is an error, never a pass. Signing (the same three) is
//! there for the tests, which make their tokens with this provider.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{new_error, ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents, UnparsedPublicKey,
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_2048_8192_SHA256,
    RSA_PKCS1_SHA256,
};
use ring::{digest, hmac};

/// The provider: ring for the three algorithms the service accepts.
static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_components,
        rsa_pub_components_from_public_key: |_| Err(new_error(ErrorKind::InvalidAlgorithm)),
        ec_pub_components_from_private_key: ec_components,
        ed_pub_components_from_private_key: |_, _| Err(new_error(ErrorKind::InvalidAlgorithm)),
        compute_digest,
    },
};

/// Makes ring jsonwebtoken's provider for this process. Safe to call more
/// than once (the first provider installed stays).
pub fn install() {
    let _ = PROVIDER.install_default();
}

/// Whether the service checks (and the tests sign) this algorithm.
fn supported(algorithm: Algorithm) -> Result<()> {
    match algorithm {
        Algorithm::HS256 | Algorithm::ES256 | Algorithm::RS256 => Ok(()),
        _ => Err(new_error(ErrorKind::InvalidAlgorithm)),
    }
}

/// A public key (or the HMAC secret) and the algorithm it checks.
struct Verify {
    algorithm: Algorithm,
    key: DecodingKey,
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    supported(*algorithm)?;
    if key.family() != algorithm.family() {
        return Err(new_error(ErrorKind::InvalidKeyFormat));
    }
    Ok(Box::new(Verify {
        algorithm: *algorithm,
        key: key.clone(),
    }))
}

impl signature::Verifier<Vec<u8>> for Verify {
    fn verify(&self, message: &[u8], sig: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let checked = match (self.algorithm, self.key.kind()) {
            (Algorithm::HS256, DecodingKeyKind::SecretOrDer(secret)) => {
                // Constant-time comparison.
                hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, secret), message, sig)
            }
            (Algorithm::ES256, DecodingKeyKind::SecretOrDer(point)) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(message, sig)
            }
            (Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) => {
                RsaPublicKeyComponents { n, e }.verify(&RSA_PKCS1_2048_8192_SHA256, message, sig)
            }
            (Algorithm::RS256, DecodingKeyKind::SecretOrDer(der)) => {
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der).verify(message, sig)
            }
            _ => return Err(signature::Error::new()),
        };
        checked.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Verify {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// A private key (or the HMAC secret) and the algorithm it signs with.
struct Sign {
    algorithm: Algorithm,
    key: EncodingKey,
}

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    supported(*algorithm)?;
    if key.family() != algorithm.family() {
        return Err(new_error(ErrorKind::InvalidKeyFormat));
    }
    Ok(Box::new(Sign {
        algorithm: *algorithm,
        key: key.clone(),
    }))
}

/// An RSA private key: PKCS#1 (what jsonwebtoken keeps of a PEM file), or
/// PKCS#8.
fn rsa_key_pair(der: &[u8]) -> Result<RsaKeyPair> {
    RsaKeyPair::from_der(der)
        .or_else(|_| RsaKeyPair::from_pkcs8(der))
        .map_err(|e| new_error(ErrorKind::InvalidRsaKey(e.to_string())))
}

/// A P-256 private key in PKCS#8.
fn ec_key_pair(der: &[u8]) -> Result<EcdsaKeyPair> {
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &SystemRandom::new())
        .map_err(|_| new_error(ErrorKind::InvalidEcdsaKey))
}

impl signature::Signer<Vec<u8>> for Sign {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let failed = |_| signature::Error::new();
        let key = self.key.as_bytes();
        match self.algorithm {
            Algorithm::HS256 => {
                let key = hmac::Key::new(hmac::HMAC_SHA256, key);
                Ok(hmac::sign(&key, message).as_ref().to_vec())
            }
            Algorithm::ES256 => {
                let pair = ec_key_pair(key).map_err(failed)?;
                let sig = pair
                    .sign(&SystemRandom::new(), message)
                    .map_err(|_| signature::Error::new())?;
                Ok(sig.as_ref().to_vec())
            }
            Algorithm::RS256 => {
                let pair = rsa_key_pair(key).map_err(failed)?;
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
                    .map_err(|_| signature::Error::new())?;
                Ok(sig)
            }
            _ => Err(signature::Error::new()),
        }
    }
}

impl JwtSigner for Sign {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// The public modulus and exponent of an RSA private key (a JWK made from
/// a private key, in the tests).
fn rsa_components(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let pair = rsa_key_pair(der)?;
    let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    Ok((public.n, public.e))
}

/// The curve and public point of an EC private key (P-256 only).
fn ec_components(der: &[u8], algorithm: Algorithm) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    if algorithm != Algorithm::ES256 {
        return Err(new_error(ErrorKind::InvalidEcdsaKey));
    }
    let pair = ec_key_pair(der)?;
    // An uncompressed point: 0x04, then x and y of 32 bytes each.
    match pair.public_key().as_ref() {
        [4, point @ ..] if point.len() == 64 => {
            let (x, y) = point.split_at(32);
            Ok((EllipticCurve::P256, x.to_vec(), y.to_vec()))
        }
        _ => Err(new_error(ErrorKind::InvalidEcdsaKey)),
    }
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
        _ => return Err(new_error(ErrorKind::InvalidAlgorithm)),
    };
    Ok(digest::digest(algorithm, data).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{decode, encode, Header, Validation};
    use serde_json::{json, Value};

    use super::*;

    fn check(token: &str, key: &DecodingKey, algorithm: Algorithm) -> bool {
        let mut validation = Validation::new(algorithm);
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        decode::<Value>(token, key, &validation).is_ok()
    }

    /// Replaces the payload by another one, keeping the signature.
    fn tampered(token: &str) -> String {
        let parts: Vec<&str> = token.split('.').collect();
        let other = encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "someone else"}),
            &EncodingKey::from_secret(b"x").unwrap(),
        )
        .unwrap();
        let payload = other.split('.').nth(1).unwrap();
        format!("{}.{payload}.{}", parts[0], parts[2])
    }

    #[test]
    fn hs256_and_es256_tokens_check_and_tampered_ones_do_not() {
        install();
        let claims = json!({"sub": "u1"});
        // HS256.
        let token = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"a secret of at least thirty-two bytes").unwrap(),
        )
        .unwrap();
        let right = DecodingKey::from_secret(b"a secret of at least thirty-two bytes").unwrap();
        let wrong = DecodingKey::from_secret(b"another secret of thirty-two bytes").unwrap();
        assert!(check(&token, &right, Algorithm::HS256));
        assert!(!check(&token, &wrong, Algorithm::HS256));
        assert!(!check(&tampered(&token), &right, Algorithm::HS256));
        // ES256, its public key through a JWK as a JWKS gives it.
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let private = EncodingKey::from_ec_der(pkcs8.as_ref());
        let jwk = Jwk::from_encoding_key(&private, Algorithm::ES256).unwrap();
        let public = DecodingKey::from_jwk(&jwk).unwrap();
        let token = encode(&Header::new(Algorithm::ES256), &claims, &private).unwrap();
        assert!(check(&token, &public, Algorithm::ES256));
        assert!(!check(&tampered(&token), &public, Algorithm::ES256));
        // The HMAC secret is no EC key, and the reverse.
        assert!(!check(&token, &right, Algorithm::ES256));
        assert!(verifier(&Algorithm::HS256, &public).is_err());
    }

    #[test]
    fn other_algorithms_are_refused() {
        let key = DecodingKey::from_secret(b"a secret of at least thirty-two bytes").unwrap();
        for algorithm in [
            Algorithm::HS384,
            Algorithm::HS512,
            Algorithm::ES384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::EdDSA,
        ] {
            assert!(verifier(&algorithm, &key).is_err(), "{algorithm:?}");
        }
    }
}
