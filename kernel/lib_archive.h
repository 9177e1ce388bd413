// libarchive, loaded on first use (dlopen) rather than linked: with what
// it links in turn (libxml2, ICU, lzma, bz2...), loading it cost every run
// of criu-lite about 20 ms when its files were not in the page cache, and
// only image archives and a tmpfs's files use it.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include "base/result.h"

namespace crl {

// The functions criu-lite calls.
// clang-format off
#define CRL_LIBARCHIVE_FUNCTIONS(X) \
  X(archive_entry_filetype) \
  X(archive_entry_free) \
  X(archive_entry_hardlink) \
  X(archive_entry_ino64) \
  X(archive_entry_linkify) \
  X(archive_entry_linkresolver_free) \
  X(archive_entry_linkresolver_new) \
  X(archive_entry_linkresolver_set_strategy) \
  X(archive_entry_new) \
  X(archive_entry_pathname) \
  X(archive_entry_set_filetype) \
  X(archive_entry_set_mtime) \
  X(archive_entry_set_pathname) \
  X(archive_entry_set_perm) \
  X(archive_entry_set_size) \
  X(archive_error_string) \
  X(archive_read_data) \
  X(archive_read_data_skip) \
  X(archive_read_disk_descend) \
  X(archive_read_disk_new) \
  X(archive_read_disk_open) \
  X(archive_read_disk_set_behavior) \
  X(archive_read_disk_set_symlink_physical) \
  X(archive_read_extract2) \
  X(archive_read_free) \
  X(archive_read_new) \
  X(archive_read_next_header) \
  X(archive_read_next_header2) \
  X(archive_read_open_filename) \
  X(archive_read_open_memory) \
  X(archive_read_support_filter_gzip) \
  X(archive_read_support_filter_zstd) \
  X(archive_read_support_format_tar) \
  X(archive_write_add_filter_gzip) \
  X(archive_write_add_filter_zstd) \
  X(archive_write_close) \
  X(archive_write_data) \
  X(archive_write_disk_new) \
  X(archive_write_disk_set_options) \
  X(archive_write_finish_entry) \
  X(archive_write_free) \
  X(archive_write_header) \
  X(archive_write_new) \
  X(archive_write_open) \
  X(archive_write_open_fd) \
  X(archive_write_set_bytes_in_last_block) \
  X(archive_write_set_format_pax) \
  X(archive_write_set_format_pax_restricted) \
  /* end */
// clang-format on

struct LibArchive {
#define CRL_LIBARCHIVE_FIELD(name) decltype(&::name) name = nullptr;
  CRL_LIBARCHIVE_FUNCTIONS(CRL_LIBARCHIVE_FIELD)
#undef CRL_LIBARCHIVE_FIELD
};

// Loads libarchive once; an error names what is missing. Every entry
// point that uses it calls this first, in criu-lite's own mount namespace
// (a thread inside a task's would look for the library in its files).
Status LoadLibArchive();
// The loaded functions (LoadLibArchive succeeded before).
const LibArchive& Archive();

}  // namespace crl
