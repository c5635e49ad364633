#pragma once
// The encrypted backup file (`backups.encrypt: true`): AES-256-GCM in sealed chunks, streamed,
// with a per-backup key derived from the master key. The layout, byte by byte, and what each
// part defends against: docs/backups.md#the-encrypted-format.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/outcome.hpp"
#include "common/secret.hpp"

namespace tmaster::backups {

/// Reads at most `capacity` bytes into `buffer` and returns how many; 0 means the end of the
/// input. It may return fewer than asked before the end.
using ByteReader = std::function<Outcome<std::size_t>(char* buffer, std::size_t capacity)>;
/// Writes all of `bytes`, or fails.
using ByteWriter = std::function<Status(std::string_view bytes)>;

/// A reader over a file descriptor (read(2), EINTR retried). `what` names it in errors
/// (e.g. the file's path). The descriptor stays the caller's.
ByteReader FdReader(int fd, std::string what);
/// A writer over a file descriptor (write(2) until every byte is written, EINTR retried).
ByteWriter FdWriter(int fd, std::string what);

/// The plaintext bytes per chunk this build writes.
inline constexpr std::size_t kDefaultChunkBytes = 64 * 1024;
/// The largest chunk a file may declare (a bound on what a reader allocates).
inline constexpr std::size_t kMaxChunkBytes = 16 * 1024 * 1024;
/// The size of the header this build writes (version 1, a 16-character key id).
inline constexpr std::size_t kEncryptedHeaderBytes = 62;
/// The GCM tag after each chunk.
inline constexpr std::size_t kChunkTagBytes = 16;

/// The id of the backup key a master key gives: 16 hex characters of an HMAC of the master
/// key, recorded in each file's header and in the catalog. It identifies the master key (after
/// a rotation, which one a file needs) and reveals nothing of it.
std::string BackupKeyId(const Secret& master_key);

/// HKDF-SHA256 (RFC 5869) of `key_material` with `salt` and `info`, `length` bytes; nullopt
/// when OpenSSL refuses (a length over 255 × 32, an OpenSSL without HKDF), never a weak key.
/// Public for its test vectors.
std::optional<std::string> HkdfSha256(std::string_view key_material, std::string_view salt,
                                      std::string_view info, std::size_t length);

/// Encrypts everything `in` yields into `out`: the header, then one sealed chunk per
/// `chunk_bytes` of plaintext (the last one possibly shorter, possibly empty), with a key
/// derived from `master_key`, a fresh random salt and `backup_id` (the catalog's id: a file
/// decrypts only under the id it was written for). Memory stays at two chunks whatever the
/// size. Fails (kStalled `BackupEncryptFailed`) on an empty id or a chunk size outside
/// 1..kMaxChunkBytes; a failure of `in` or `out` is returned as it came. Nothing written on a
/// failure is a valid file.
Status EncryptBackup(const Secret& master_key, std::string_view backup_id, const ByteReader& in,
                     const ByteWriter& out, std::size_t chunk_bytes = kDefaultChunkBytes);

/// Decrypts a file EncryptBackup wrote for `backup_id` from `in` into `out`, and returns the
/// number of plaintext bytes. Each chunk is written only after its tag checked, but a file
/// altered at chunk N has had chunks 0..N-1 written before the failure: trust `out` only when
/// this returns a value (restore decrypts into a temporary file, or verifies first with a
/// writer that discards). Failures are kStalled `BackupDecryptFailed` and say where: not an
/// encrypted backup (magic), an unknown format version, a key id other than the master key's,
/// a header or chunk that fails authentication (altered, moved, from another file or backup),
/// a file truncated after chunk N. No message holds a key or any plaintext.
Outcome<std::uint64_t> DecryptBackup(const Secret& master_key, std::string_view backup_id,
                                     const ByteReader& in, const ByteWriter& out);

}  // namespace tmaster::backups
