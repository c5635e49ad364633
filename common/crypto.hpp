#pragma once

#include <string>
#include <string_view>

namespace tmaster::crypto {

/// Raw 32-byte SHA-256 digest of `data`.
std::string Sha256(std::string_view data);
/// Lower-case hex SHA-256 of `data` (64 characters).
std::string Sha256Hex(std::string_view data);
/// Raw 32-byte HMAC-SHA256 of `message` under `key`.
std::string HmacSha256(std::string_view key, std::string_view message);
/// Lower-case hex encoding of raw bytes.
std::string Hex(std::string_view bytes);
/// Standard base64 with padding (RFC 4648 §4).
std::string Base64(std::string_view bytes);
/// base64url without padding (RFC 4648 §5).
std::string Base64Url(std::string_view bytes);
/// Decodes standard base64; returns false on malformed input.
bool Base64Decode(std::string_view text, std::string& out);
/// PBKDF2-HMAC-SHA256 (RFC 8018) of `password` with `salt`, `iterations`, 32-byte output.
std::string Pbkdf2Sha256(std::string_view password, std::string_view salt, int iterations);
/// Compares two byte strings in time independent of where they differ (length is not secret).
bool ConstantTimeEqual(std::string_view a, std::string_view b);
/// `n` bytes from the OpenSSL CSPRNG.
std::string RandomBytes(std::size_t n);

}  // namespace tmaster::crypto
