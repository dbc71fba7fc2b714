/* How many scans libjpeg itself starts on a JPEG: the reference for the preflight's count.
 * Buffered-image mode makes jpeg_consume_input return JPEG_REACHED_SOS once per scan it reads
 * (the same marker reader and entropy decoders as a normal decode). A fatal libjpeg error ends
 * the count where the decoder would have stopped. */
#include <setjmp.h>
#include <stdio.h>
#include <jpeglib.h>

struct guarded_error { struct jpeg_error_mgr pub; jmp_buf escape; };

static void stop_here(j_common_ptr cinfo) { longjmp(((struct guarded_error *)cinfo->err)->escape, 1); }
static void stay_quiet(j_common_ptr cinfo, int level) { (void)cinfo; (void)level; }

long libjpeg_scan_count(const unsigned char *data, unsigned long size, long limit) {
  struct jpeg_decompress_struct cinfo;
  struct guarded_error error;
  volatile long scans = 0;
  cinfo.err = jpeg_std_error(&error.pub);
  error.pub.error_exit = stop_here;
  error.pub.emit_message = stay_quiet;
  if (setjmp(error.escape)) { jpeg_destroy_decompress(&cinfo); return scans; }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, size);
  if (jpeg_read_header(&cinfo, TRUE) != JPEG_HEADER_OK) { jpeg_destroy_decompress(&cinfo); return 0; }
  scans = 1;
  cinfo.buffered_image = TRUE;
  jpeg_start_decompress(&cinfo);
  for (;;) {
    int status = jpeg_consume_input(&cinfo);
    if (status == JPEG_REACHED_EOI || status == JPEG_SUSPENDED) break;
    if (status == JPEG_REACHED_SOS && ++scans > limit) break;
  }
  jpeg_destroy_decompress(&cinfo);
  return scans;
}
