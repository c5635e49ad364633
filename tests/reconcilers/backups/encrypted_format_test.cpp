// The encrypted backup format (docs/backups.md#the-encrypted-format): round trips of every
// size class, every single-bit flip detected, truncation, moved and swapped chunks, a wrong key
// or backup id refused, no key in any message, and streaming through file descriptors.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "common/crypto.hpp"
#include "common/secret.hpp"
#include "reconcilers/backups/encrypted_format.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using tmaster::Outcome;
using tmaster::Secret;
using tmaster::Status;
using tmaster::backups::BackupKeyId;
using tmaster::backups::ByteReader;
using tmaster::backups::ByteWriter;
using tmaster::backups::DecryptBackup;
using tmaster::backups::EncryptBackup;
using tmaster::backups::HkdfSha256;
using tmaster::backups::kChunkTagBytes;
using tmaster::backups::kDefaultChunkBytes;
using tmaster::backups::kEncryptedHeaderBytes;

const Secret kMasterKey("dGVzdC1tYXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmctZW5vdWdoIQ==");
const Secret kOtherKey("b3RoZXItbWFzdGVyLWtleS0zMi1ieXRlcy1sb25nLWVub3VnaA==");

// Yields `text` in pieces of at most `piece` bytes, as a pipe would.
ByteReader StringReader(const std::string& text, std::size_t piece = 7919) {
  auto offset = std::make_shared<std::size_t>(0);
  return [&text, piece, offset](char* buffer, std::size_t capacity) -> Outcome<std::size_t> {
    const std::size_t n = std::min({capacity, piece, text.size() - *offset});
    std::copy_n(text.data() + *offset, n, buffer);
    *offset += n;
    return n;
  };
}

ByteWriter StringWriter(std::string& out) {
  return [&out](std::string_view bytes) -> Status {
    out.append(bytes);
    return tmaster::Ok();
  };
}

std::string Pattern(std::size_t size) {
  std::string text(size, '\0');
  for (std::size_t i = 0; i < size; ++i) text[i] = static_cast<char>((i * 131 + i / 251) & 0xff);
  return text;
}

std::string Encrypt(const std::string& plain, std::size_t chunk = kDefaultChunkBytes,
                    const std::string& id = "acme-20261203T180000Z",
                    const Secret& key = kMasterKey) {
  std::string sealed;
  const Status status = EncryptBackup(key, id, StringReader(plain), StringWriter(sealed), chunk);
  INFO((status.ok() ? std::string() : status.failure().message));
  REQUIRE(status.ok());
  return sealed;
}

struct Opened {
  bool ok = false;
  std::string plain;
  std::string message;
};

Opened Decrypt(const std::string& sealed, const std::string& id = "acme-20261203T180000Z",
               const Secret& key = kMasterKey) {
  Opened opened;
  const Outcome<std::uint64_t> result =
      DecryptBackup(key, id, StringReader(sealed), StringWriter(opened.plain));
  opened.ok = result.ok();
  if (result) {
    CHECK(*result == opened.plain.size());
  } else {
    CHECK(result.failure().reason == "BackupDecryptFailed");
    opened.message = result.failure().message;
    // No key in any form, ever.
    for (const Secret* secret : {&key, &kMasterKey, &kOtherKey}) {
      CHECK(opened.message.find(secret->Reveal()) == std::string::npos);
      CHECK(opened.message.find(tmaster::crypto::Hex(secret->Reveal())) == std::string::npos);
    }
  }
  return opened;
}

std::size_t SealedSize(std::size_t plain, std::size_t chunk) {
  const std::size_t chunks = plain == 0 ? 1 : (plain + chunk - 1) / chunk;
  return kEncryptedHeaderBytes + plain + chunks * kChunkTagBytes;
}

}  // namespace

TEST_CASE("encrypted format: HKDF-SHA256 matches RFC 5869's test cases 1 and 3") {
  std::string ikm(22, '\x0b');
  std::string salt;
  std::string info;
  for (int i = 0; i <= 0x0c; ++i) salt.push_back(static_cast<char>(i));
  for (int i = 0xf0; i <= 0xf9; ++i) info.push_back(static_cast<char>(i));
  CHECK(tmaster::crypto::Hex(HkdfSha256(ikm, salt, info, 42).value_or("")) ==
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
  CHECK(tmaster::crypto::Hex(HkdfSha256(ikm, "", "", 42).value_or("")) ==
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

TEST_CASE("encrypted format: HKDF refuses a length over 255 blocks instead of a weak key") {
  CHECK(HkdfSha256("key", "salt", "info", 255 * 32).has_value());
  CHECK_FALSE(HkdfSha256("key", "salt", "info", 255 * 32 + 1).has_value());
}

TEST_CASE("encrypted format: round trips, from empty to many chunks") {
  struct Row {
    std::size_t size;
    std::size_t chunk;
  };
  const Row rows[] = {
      {0, kDefaultChunkBytes},
      {1, kDefaultChunkBytes},
      {kDefaultChunkBytes - 1, kDefaultChunkBytes},
      {kDefaultChunkBytes, kDefaultChunkBytes},
      {kDefaultChunkBytes + 1, kDefaultChunkBytes},
      {5 * kDefaultChunkBytes, kDefaultChunkBytes},
      {3 * 1024 * 1024 + 17, kDefaultChunkBytes},
      {1000, 16},
      {48, 16},
      {5, 1},
  };
  for (const Row& row : rows) {
    CAPTURE(row.size);
    CAPTURE(row.chunk);
    const std::string plain = Pattern(row.size);
    const std::string sealed = Encrypt(plain, row.chunk);
    CHECK(sealed.size() == SealedSize(row.size, row.chunk));
    CHECK(sealed.compare(0, 8, "TMBACKUP") == 0);
    CHECK(sealed.substr(10, 16) == BackupKeyId(kMasterKey));
    if (row.size >= 16) CHECK(sealed.find(plain.substr(0, 16)) == std::string::npos);
    const Opened opened = Decrypt(sealed);
    INFO(opened.message);
    CHECK(opened.ok);
    CHECK(opened.plain == plain);
  }
  // Each file has its own salt: the same plaintext never encrypts the same way twice.
  CHECK(Encrypt("same") != Encrypt("same"));
}

TEST_CASE("encrypted format: every single-bit flip anywhere in a file is detected") {
  const std::string plain = Pattern(40);  // three chunks of 16: full, full, 8
  const std::string sealed = Encrypt(plain, 16);
  REQUIRE(sealed.size() == kEncryptedHeaderBytes + 40 + 3 * kChunkTagBytes);
  int detected = 0;
  for (std::size_t byte = 0; byte < sealed.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string altered = sealed;
      altered[byte] = static_cast<char>(altered[byte] ^ (1 << bit));
      const Opened opened = Decrypt(altered);
      if (!opened.ok) ++detected;
    }
  }
  CHECK(detected == static_cast<int>(sealed.size() * 8));
}

TEST_CASE("encrypted format: what each alteration says") {
  const std::string plain = Pattern(100);
  const std::string sealed = Encrypt(plain, 16);  // 7 chunks: six of 16, one of 4
  const std::size_t chunk = 16 + kChunkTagBytes;
  const std::size_t body = kEncryptedHeaderBytes;

  SUBCASE("a bit in the salt (header): the header or chunk 0") {
    std::string altered = sealed;
    altered[40] = static_cast<char>(altered[40] ^ 1);
    CHECK(Decrypt(altered).message ==
          "encrypted backup \"acme-20261203T180000Z\": the header or chunk 0 failed "
          "authentication (altered, moved, truncated, or from another file or backup)");
  }
  SUBCASE("a bit in a chunk's ciphertext, or in its tag") {
    std::string in_chunk = sealed;
    in_chunk[body + 2 * chunk + 3] ^= 0x40;
    const Opened opened = Decrypt(in_chunk);
    CHECK(opened.message.find("chunk 2 failed authentication") != std::string::npos);
    CHECK(opened.plain == plain.substr(0, 32));  // chunks 0 and 1; nothing of the altered one
    std::string in_tag = sealed;
    in_tag[body + 3 * chunk - 1] ^= 0x01;
    CHECK(Decrypt(in_tag).message.find("chunk 2 failed authentication") != std::string::npos);
  }
  SUBCASE("the magic, the version, the chunk size") {
    std::string magic = sealed;
    magic[0] = 'X';
    CHECK(Decrypt(magic).message.find("not an encrypted Tenant Master backup") !=
          std::string::npos);
    CHECK(Decrypt("short").message.find("not an encrypted Tenant Master backup") !=
          std::string::npos);
    std::string version = sealed;
    version[8] = 2;
    CHECK(Decrypt(version).message.find(
              "format version 2 is not supported (this build reads version 1)") !=
          std::string::npos);
    std::string size = sealed;
    size[kEncryptedHeaderBytes - 1] = 32;  // chunk size 16 -> 32
    CHECK_FALSE(Decrypt(size).ok);
    std::string zero = sealed;
    zero[kEncryptedHeaderBytes - 1] = 0;
    CHECK(Decrypt(zero).message.find("chunk size 0 is out of range") != std::string::npos);
  }
  SUBCASE("truncated at a chunk boundary: named as truncation") {
    const std::string cut = sealed.substr(0, body + 3 * chunk);
    CHECK(Decrypt(cut).message ==
          "encrypted backup \"acme-20261203T180000Z\": truncated: the file ends after chunk 2, "
          "which is not the last");
    CHECK(Decrypt(sealed.substr(0, body)).message.find("truncated: no chunk after the header") !=
          std::string::npos);
    CHECK(Decrypt(sealed.substr(0, 30)).message.find("truncated inside the header") !=
          std::string::npos);
  }
  SUBCASE("truncated inside a chunk, or with bytes appended") {
    CHECK_FALSE(Decrypt(sealed.substr(0, body + 3 * chunk + 5)).ok);
    CHECK_FALSE(Decrypt(sealed.substr(0, sealed.size() - 1)).ok);
    CHECK_FALSE(Decrypt(sealed + "x").ok);
    CHECK_FALSE(Decrypt(sealed + sealed.substr(body, chunk)).ok);
  }
  SUBCASE("two chunks swapped, a chunk repeated, a chunk dropped") {
    std::string swapped = sealed;
    std::copy_n(sealed.begin() + static_cast<std::ptrdiff_t>(body + chunk), chunk,
                swapped.begin() + static_cast<std::ptrdiff_t>(body + 2 * chunk));
    std::copy_n(sealed.begin() + static_cast<std::ptrdiff_t>(body + 2 * chunk), chunk,
                swapped.begin() + static_cast<std::ptrdiff_t>(body + chunk));
    CHECK(Decrypt(swapped).message.find("chunk 1 failed authentication") != std::string::npos);
    std::string dropped = sealed;
    dropped.erase(body + chunk, chunk);
    CHECK(Decrypt(dropped).message.find("chunk 1 failed authentication") != std::string::npos);
  }
  SUBCASE("a chunk from another file of the same backup id and key") {
    const std::string other = Encrypt(plain, 16);
    std::string mixed = sealed;
    std::copy_n(other.begin() + static_cast<std::ptrdiff_t>(body + chunk), chunk,
                mixed.begin() + static_cast<std::ptrdiff_t>(body + chunk));
    CHECK(Decrypt(mixed).message.find("chunk 1 failed authentication") != std::string::npos);
    // Its header on our chunks: the salt gives another key.
    std::string header_swapped = sealed;
    std::copy_n(other.begin(), body, header_swapped.begin());
    CHECK(Decrypt(header_swapped).message.find("the header or chunk 0") != std::string::npos);
  }
  SUBCASE("another backup id: a renamed file does not decrypt") {
    CHECK(Decrypt(sealed, "acme-20261204T180000Z").message.find("the header or chunk 0") !=
          std::string::npos);
  }
  SUBCASE("a wrong master key: named by key id, the key never shown") {
    const Opened opened = Decrypt(sealed, "acme-20261203T180000Z", kOtherKey);
    CHECK(opened.message == "encrypted backup \"acme-20261203T180000Z\": encrypted under key id " +
                                BackupKeyId(kMasterKey) + ", but the master key given has key id " +
                                BackupKeyId(kOtherKey));
    CHECK(opened.plain.empty());
  }
}

TEST_CASE("encrypted format: key ids identify master keys") {
  CHECK(BackupKeyId(kMasterKey).size() == 16);
  CHECK(BackupKeyId(kMasterKey) == BackupKeyId(Secret(kMasterKey.Reveal())));
  CHECK(BackupKeyId(kMasterKey) != BackupKeyId(kOtherKey));
  CHECK(kMasterKey.Reveal().find(BackupKeyId(kMasterKey)) == std::string::npos);
}

TEST_CASE("encrypted format: bad arguments and failing streams") {
  std::string sink;
  const Status no_id = EncryptBackup(kMasterKey, "", StringReader("x"), StringWriter(sink));
  REQUIRE_FALSE(no_id.ok());
  CHECK(no_id.failure().message == "encrypting a backup: the backup id is empty");
  const Status no_chunk = EncryptBackup(kMasterKey, "b1", StringReader("x"), StringWriter(sink), 0);
  REQUIRE_FALSE(no_chunk.ok());
  CHECK(no_chunk.failure().message.find("chunk size 0 is out of range") != std::string::npos);

  const ByteReader broken = [](char*, std::size_t) -> Outcome<std::size_t> {
    return tmaster::Failure::Transient("BackupReadFailed", "read pg_dump: broken pipe");
  };
  const Status failed = EncryptBackup(kMasterKey, "b1", broken, StringWriter(sink));
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.failure().message == "read pg_dump: broken pipe");

  const ByteWriter full = [](std::string_view) -> Status {
    return tmaster::Failure::Transient("BackupWriteFailed", "write backup: no space left");
  };
  const Outcome<std::uint64_t> decrypted =
      DecryptBackup(kMasterKey, "acme-20261203T180000Z", StringReader(Encrypt("data")), full);
  REQUIRE_FALSE(decrypted.ok());
  CHECK(decrypted.failure().reason == "BackupWriteFailed");
}

TEST_CASE("encrypted format: streams through file descriptors without holding the file") {
  tmaster::testing::TempDir dir;
  const std::string plain = Pattern(2 * 1024 * 1024 + 3);
  const std::string plain_path = dir.Write("dump", plain).string();
  const std::string sealed_path = (dir.path() / "dump.enc").string();
  const std::string opened_path = (dir.path() / "dump.out").string();

  const int in = ::open(plain_path.c_str(), O_RDONLY | O_CLOEXEC);
  const int sealed_out =
      ::open(sealed_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(in >= 0);
  REQUIRE(sealed_out >= 0);
  const Status sealed =
      EncryptBackup(kMasterKey, "b-fd", tmaster::backups::FdReader(in, plain_path),
                    tmaster::backups::FdWriter(sealed_out, sealed_path));
  ::close(in);
  ::close(sealed_out);
  REQUIRE(sealed.ok());

  const int sealed_in = ::open(sealed_path.c_str(), O_RDONLY | O_CLOEXEC);
  const int out = ::open(opened_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(sealed_in >= 0);
  REQUIRE(out >= 0);
  const Outcome<std::uint64_t> opened =
      DecryptBackup(kMasterKey, "b-fd", tmaster::backups::FdReader(sealed_in, sealed_path),
                    tmaster::backups::FdWriter(out, opened_path));
  ::close(sealed_in);
  ::close(out);
  REQUIRE(opened.ok());
  CHECK(*opened == plain.size());
  std::ifstream sealed_file(sealed_path, std::ios::binary);
  const std::string sealed_bytes((std::istreambuf_iterator<char>(sealed_file)),
                                 std::istreambuf_iterator<char>());
  CHECK(sealed_bytes.size() == SealedSize(plain.size(), kDefaultChunkBytes));
  std::ifstream opened_file(opened_path, std::ios::binary);
  const std::string opened_bytes((std::istreambuf_iterator<char>(opened_file)),
                                 std::istreambuf_iterator<char>());
  CHECK(opened_bytes == plain);

  std::string back;

  // A descriptor that cannot be read fails with the name given, not a crash.
  const Outcome<std::uint64_t> closed = DecryptBackup(
      kMasterKey, "b-fd", tmaster::backups::FdReader(-1, "closed.enc"), StringWriter(back));
  REQUIRE_FALSE(closed.ok());
  CHECK(closed.failure().message.find("read closed.enc: ") == 0);
}
