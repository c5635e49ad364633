#include "reconcilers/backups/encrypted_format.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cerrno>
#include <memory>
#include <system_error>
#include <utility>

#include "common/crypto.hpp"

namespace tmaster::backups {
namespace {

// docs/backups.md#the-encrypted-format: every integer big-endian.
constexpr std::string_view kMagic = "TMBACKUP";
constexpr unsigned char kFormatVersion = 1;
constexpr std::size_t kKeyIdChars = 16;
constexpr std::size_t kMaxKeyIdChars = 64;
constexpr std::size_t kSaltBytes = 32;
constexpr std::size_t kKeyBytes = 32;
constexpr std::size_t kNonceBytes = 12;
constexpr std::string_view kKeyInfoPrefix{"tenant-master/backup/v1\0", 24};
constexpr std::string_view kKeyIdLabel = "tenant-master/backup-key-id/v1";

Failure EncryptFailure(std::string message) {
  return Failure::Stalled("BackupEncryptFailed", std::move(message));
}

Failure DecryptFailure(std::string_view backup_id, std::string message) {
  return Failure::Stalled("BackupDecryptFailed",
                          "encrypted backup \"" + std::string(backup_id) + "\": " + message);
}

const unsigned char* Bytes(std::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}

void PutBigEndian(std::string& out, std::uint64_t value, int bytes) {
  for (int shift = (bytes - 1) * 8; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((value >> shift) & 0xffU));
  }
}

std::uint64_t GetBigEndian(std::string_view in) {
  std::uint64_t value = 0;
  for (char c : in) value = (value << 8) | static_cast<unsigned char>(c);
  return value;
}

// The key and base nonce of one file; wiped when it goes.
class FileKey {
 public:
  /// False when the derivation failed: the key is then unusable and must not be used.
  [[nodiscard]] bool Derive(const Secret& master_key, std::string_view salt,
                            std::string_view backup_id) {
    std::string info(kKeyInfoPrefix);
    info += backup_id;
    std::optional<std::string> derived =
        HkdfSha256(master_key.Reveal(), salt, info, kKeyBytes + kNonceBytes);
    if (!derived) return false;
    std::copy(derived->begin(), derived->begin() + kKeyBytes, key_.begin());
    std::copy(derived->begin() + kKeyBytes, derived->end(), base_nonce_.begin());
    OPENSSL_cleanse(derived->data(), derived->size());
    return true;
  }
  FileKey() = default;
  ~FileKey() {
    OPENSSL_cleanse(key_.data(), key_.size());
    OPENSSL_cleanse(base_nonce_.data(), base_nonce_.size());
  }
  FileKey(const FileKey&) = delete;
  FileKey& operator=(const FileKey&) = delete;

  [[nodiscard]] const unsigned char* key() const { return key_.data(); }
  // The base nonce with the chunk index XORed into its last 8 bytes: unique per chunk.
  [[nodiscard]] std::array<unsigned char, kNonceBytes> Nonce(std::uint64_t index) const {
    std::array<unsigned char, kNonceBytes> nonce = base_nonce_;
    for (std::size_t i = 0; i < 8; ++i) {
      nonce[kNonceBytes - 1 - i] ^= static_cast<unsigned char>((index >> (8 * i)) & 0xffU);
    }
    return nonce;
  }

 private:
  std::array<unsigned char, kKeyBytes> key_{};
  std::array<unsigned char, kNonceBytes> base_nonce_{};
};

// The associated data of chunk `index`: the header's digest (binds every chunk to this file's
// header, salt included), the index (no reordering) and whether it is the last (no truncation
// at a chunk boundary).
std::string ChunkAad(std::string_view header_digest, std::uint64_t index, bool last) {
  std::string aad(header_digest);
  PutBigEndian(aad, index, 8);
  aad.push_back(last ? '\1' : '\0');
  return aad;
}

using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

CipherContext NewContext() {
  return {EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free};
}

// Seals `plain` and appends ciphertext and tag to `out`. False only if OpenSSL fails.
bool SealChunk(const FileKey& key, std::uint64_t index, std::string_view aad,
               std::string_view plain, std::string& out) {
  CipherContext ctx = NewContext();
  const auto nonce = key.Nonce(index);
  int length = 0;
  const std::size_t start = out.size();
  out.resize(start + plain.size() + kChunkTagBytes);
  auto* cipher = reinterpret_cast<unsigned char*>(out.data() + start);
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.key(), nonce.data()) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &length, Bytes(aad), static_cast<int>(aad.size())) !=
          1 ||
      EVP_EncryptUpdate(ctx.get(), cipher, &length, Bytes(plain), static_cast<int>(plain.size())) !=
          1 ||
      EVP_EncryptFinal_ex(ctx.get(), cipher + length, &length) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kChunkTagBytes),
                          cipher + plain.size()) != 1) {
    return false;
  }
  return true;
}

// Opens `sealed` (ciphertext and tag) into `plain`. False when the tag does not check.
bool OpenChunk(const FileKey& key, std::uint64_t index, std::string_view aad,
               std::string_view sealed, std::string& plain) {
  if (sealed.size() < kChunkTagBytes) return false;
  const std::size_t cipher_size = sealed.size() - kChunkTagBytes;
  std::array<unsigned char, kChunkTagBytes> tag{};
  std::copy(sealed.begin() + static_cast<std::ptrdiff_t>(cipher_size), sealed.end(), tag.begin());
  CipherContext ctx = NewContext();
  const auto nonce = key.Nonce(index);
  plain.resize(cipher_size);
  auto* out = reinterpret_cast<unsigned char*>(plain.data());
  int length = 0;
  return ctx &&
         EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.key(), nonce.data()) == 1 &&
         EVP_DecryptUpdate(ctx.get(), nullptr, &length, Bytes(aad), static_cast<int>(aad.size())) ==
             1 &&
         EVP_DecryptUpdate(ctx.get(), out, &length, Bytes(sealed), static_cast<int>(cipher_size)) ==
             1 &&
         EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kChunkTagBytes),
                             tag.data()) == 1 &&
         EVP_DecryptFinal_ex(ctx.get(), out + length, &length) == 1;
}

// Fills `buffer` (its whole size) unless the input ends first; returns how much it read.
Outcome<std::size_t> ReadFull(const ByteReader& in, std::string& buffer) {
  std::size_t filled = 0;
  while (filled < buffer.size()) {
    Outcome<std::size_t> got = in(buffer.data() + filled, buffer.size() - filled);
    if (!got) return got.failure();
    if (*got == 0) break;
    // A reader that claims more than it was given room for has written past the buffer.
    assert(*got <= buffer.size() - filled && "ByteReader returned more than its capacity");
    filled += *got;
  }
  return filled;
}

std::string ErrnoText(int error) {
  return std::error_code(error, std::generic_category()).message();
}

}  // namespace

ByteReader FdReader(int fd, std::string what) {
  return [fd, what = std::move(what)](char* buffer, std::size_t capacity) -> Outcome<std::size_t> {
    for (;;) {
      const ssize_t got = ::read(fd, buffer, capacity);
      if (got >= 0) return static_cast<std::size_t>(got);
      if (errno == EINTR) continue;
      return Failure::Transient("BackupReadFailed", "read " + what + ": " + ErrnoText(errno));
    }
  };
}

ByteWriter FdWriter(int fd, std::string what) {
  return [fd, what = std::move(what)](std::string_view bytes) -> Status {
    while (!bytes.empty()) {
      const ssize_t wrote = ::write(fd, bytes.data(), bytes.size());
      if (wrote < 0 && errno == EINTR) continue;
      if (wrote <= 0) {
        return Failure::Transient("BackupWriteFailed",
                                  "write " + what + ": " + ErrnoText(wrote < 0 ? errno : EIO));
      }
      bytes.remove_prefix(static_cast<std::size_t>(wrote));
    }
    return Ok();
  };
}

std::optional<std::string> HkdfSha256(std::string_view key_material, std::string_view salt,
                                      std::string_view info, std::size_t length) {
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr), &EVP_PKEY_CTX_free);
  std::string out(length, '\0');
  std::size_t out_length = length;
  const bool ok =
      ctx && EVP_PKEY_derive_init(ctx.get()) == 1 &&
      EVP_PKEY_CTX_set_hkdf_md(ctx.get(), EVP_sha256()) == 1 &&
      EVP_PKEY_CTX_set1_hkdf_salt(ctx.get(), Bytes(salt), static_cast<int>(salt.size())) == 1 &&
      EVP_PKEY_CTX_set1_hkdf_key(ctx.get(), Bytes(key_material),
                                 static_cast<int>(key_material.size())) == 1 &&
      EVP_PKEY_CTX_add1_hkdf_info(ctx.get(), Bytes(info), static_cast<int>(info.size())) == 1 &&
      EVP_PKEY_derive(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &out_length) == 1;
  if (!ok || out_length != length) {
    OPENSSL_cleanse(out.data(), out.size());
    return std::nullopt;
  }
  return out;
}

std::string BackupKeyId(const Secret& master_key) {
  return crypto::Hex(crypto::HmacSha256(master_key.Reveal(), kKeyIdLabel)).substr(0, kKeyIdChars);
}

Status EncryptBackup(const Secret& master_key, std::string_view backup_id, const ByteReader& in,
                     const ByteWriter& out, std::size_t chunk_bytes) {
  if (backup_id.empty()) return EncryptFailure("encrypting a backup: the backup id is empty");
  if (chunk_bytes < 1 || chunk_bytes > kMaxChunkBytes) {
    return EncryptFailure("encrypting backup \"" + std::string(backup_id) + "\": chunk size " +
                          std::to_string(chunk_bytes) + " is out of range 1-" +
                          std::to_string(kMaxChunkBytes));
  }
  const std::string key_id = BackupKeyId(master_key);
  const std::string salt = crypto::RandomBytes(kSaltBytes);
  std::string header(kMagic);
  header.push_back(static_cast<char>(kFormatVersion));
  header.push_back(static_cast<char>(key_id.size()));
  header += key_id;
  header += salt;
  PutBigEndian(header, chunk_bytes, 4);
  if (Status wrote = out(header); !wrote) return wrote;

  FileKey key;
  if (!key.Derive(master_key, salt, backup_id)) {
    return EncryptFailure("encrypting backup \"" + std::string(backup_id) +
                          "\": OpenSSL refused the HKDF-SHA256 key derivation");
  }
  const std::string header_digest = crypto::Sha256(header);
  std::string current(chunk_bytes, '\0');
  std::string next(chunk_bytes, '\0');
  std::string sealed;
  Outcome<std::size_t> current_size = ReadFull(in, current);
  for (std::uint64_t index = 0;; ++index) {
    if (!current_size) return current_size.failure();
    // A full chunk is the last one only if nothing follows it: read one chunk ahead.
    Outcome<std::size_t> next_size = std::size_t{0};
    if (*current_size == chunk_bytes) next_size = ReadFull(in, next);
    if (!next_size) return next_size.failure();
    const bool last = *next_size == 0;
    sealed.clear();
    if (!SealChunk(key, index, ChunkAad(header_digest, index, last),
                   std::string_view(current).substr(0, *current_size), sealed)) {
      return EncryptFailure("encrypting backup \"" + std::string(backup_id) + "\": chunk " +
                            std::to_string(index) + ": OpenSSL refused AES-256-GCM");
    }
    if (Status wrote = out(sealed); !wrote) return wrote;
    if (last) break;
    std::swap(current, next);
    current_size = next_size;
  }
  return Ok();
}

Outcome<std::uint64_t> DecryptBackup(const Secret& master_key, std::string_view backup_id,
                                     const ByteReader& in, const ByteWriter& out) {
  // The fixed start: magic, version, key id length.
  std::string start(kMagic.size() + 2, '\0');
  Outcome<std::size_t> got = ReadFull(in, start);
  if (!got) return got.failure();
  if (*got < start.size() || std::string_view(start).substr(0, kMagic.size()) != kMagic) {
    return DecryptFailure(backup_id, "not an encrypted Tenant Master backup (no TMBACKUP magic)");
  }
  const auto version = static_cast<unsigned char>(start[kMagic.size()]);
  if (version != kFormatVersion) {
    return DecryptFailure(backup_id, "format version " + std::to_string(version) +
                                         " is not supported (this build reads version " +
                                         std::to_string(kFormatVersion) + ")");
  }
  const auto key_id_size = static_cast<unsigned char>(start[kMagic.size() + 1]);
  if (key_id_size < 1 || key_id_size > kMaxKeyIdChars) {
    return DecryptFailure(backup_id, "the header's key id length " + std::to_string(key_id_size) +
                                         " is out of range 1-" + std::to_string(kMaxKeyIdChars));
  }
  std::string rest(key_id_size + kSaltBytes + 4, '\0');
  got = ReadFull(in, rest);
  if (!got) return got.failure();
  if (*got < rest.size()) return DecryptFailure(backup_id, "truncated inside the header");
  const std::string header = start + rest;

  const std::string key_id = rest.substr(0, key_id_size);
  const std::string expected_key_id = BackupKeyId(master_key);
  if (key_id != expected_key_id) {
    // Key ids are fingerprints, not keys: naming both tells the operator which key is needed.
    bool printable = true;
    for (char c : key_id) printable = printable && c > ' ' && c < 0x7f;
    return DecryptFailure(
        backup_id, "encrypted under key id " + (printable ? key_id : std::string("(unprintable)")) +
                       ", but the master key given has key id " + expected_key_id);
  }
  const std::string salt = rest.substr(key_id_size, kSaltBytes);
  const std::uint64_t chunk_bytes =
      GetBigEndian(std::string_view(rest).substr(key_id_size + kSaltBytes));
  if (chunk_bytes < 1 || chunk_bytes > kMaxChunkBytes) {
    return DecryptFailure(backup_id, "the header's chunk size " + std::to_string(chunk_bytes) +
                                         " is out of range 1-" + std::to_string(kMaxChunkBytes));
  }

  FileKey key;
  if (!key.Derive(master_key, salt, backup_id)) {
    return DecryptFailure(backup_id, "OpenSSL refused the HKDF-SHA256 key derivation");
  }
  const std::string header_digest = crypto::Sha256(header);
  const std::size_t sealed_bytes = static_cast<std::size_t>(chunk_bytes) + kChunkTagBytes;
  std::string current(sealed_bytes, '\0');
  std::string next(sealed_bytes, '\0');
  std::string plain;
  std::uint64_t total = 0;
  Outcome<std::size_t> current_size = ReadFull(in, current);
  for (std::uint64_t index = 0;; ++index) {
    if (!current_size) return current_size.failure();
    if (*current_size < kChunkTagBytes) {
      return DecryptFailure(backup_id, index == 0
                                           ? "truncated: no chunk after the header"
                                           : "truncated inside chunk " + std::to_string(index));
    }
    Outcome<std::size_t> next_size = std::size_t{0};
    if (*current_size == sealed_bytes) next_size = ReadFull(in, next);
    if (!next_size) return next_size.failure();
    const bool last = *next_size == 0;
    const std::string_view sealed = std::string_view(current).substr(0, *current_size);
    if (!OpenChunk(key, index, ChunkAad(header_digest, index, last), sealed, plain)) {
      // A last chunk that opens as a middle one: the file was cut at a chunk boundary.
      if (last && OpenChunk(key, index, ChunkAad(header_digest, index, false), sealed, plain)) {
        return DecryptFailure(backup_id, "truncated: the file ends after chunk " +
                                             std::to_string(index) + ", which is not the last");
      }
      return DecryptFailure(
          backup_id,
          (index == 0 ? std::string("the header or chunk 0") : "chunk " + std::to_string(index)) +
              " failed authentication (altered, moved, truncated, or from "
              "another file or backup)");
    }
    if (Status wrote = out(plain); !wrote) return wrote.failure();
    total += plain.size();
    if (last) break;
    std::swap(current, next);
    current_size = next_size;
  }
  return total;
}

}  // namespace tmaster::backups
