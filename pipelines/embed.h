/* embed.h - `scrimp embed`: one embedding per input line (stdin), as JSONL or raw float32. */
#ifndef SC_EMBED_H
#define SC_EMBED_H

/* scrimp embed [--format jsonl|f32] [--model DIR] [--backend auto|cpu|cuda] [--batch N]
 *              [--threads N] < lines
 * argv[0] is "embed". Returns the exit status: 0 done, 1 runtime error (a missing model file,
 * a read or write error), 2 usage error. */
int sc_embed_cli(int argc, char **argv);

#endif
