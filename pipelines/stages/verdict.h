/* verdict.h - comparing two answers to one prompt for the shadow evaluation: deterministic where
 * the answer has a checkable form (a final answer line, a choice letter, a number, JSON), else
 * the judge call's body and the parsing of its verdict. */
#ifndef SC_VERDICT_H
#define SC_VERDICT_H

#include <stddef.h>

#define SC_ANSWER_FORM_MAX 128 /* longest canonical value kept */
/* a text without a final answer line is classified whole only when at most this long (trimmed) */
#define SC_ANSWER_SHORT_MAX 16
/* longest WORD (bytes of the canonical value); a longer final answer is NONE */
#define SC_ANSWER_WORD_MAX 64
/* first bytes of the judge call's systemInstruction, by which the upstream knows a judge call */
#define SC_JUDGE_PREFIX "scrimp-judge"

typedef enum {
    SC_FORM_NONE = 0, /* nothing checkable: the judge decides */
    SC_FORM_CHOICE,   /* a choice letter, canonical lower-case "b" */
    SC_FORM_NUMBER,   /* a number, canonical: no sign for 0, no commas/currency/percent sign, no
                       * trailing zeros: "1234.5", "-3", "12" */
    SC_FORM_WORD,     /* a short final answer that is neither: lower-cased, whitespace collapsed,
                       * trailing punctuation removed */
    SC_FORM_JSON,     /* canonical JSON (keys sorted, compact; integral reals written as
                       * integers) */
} sc_answer_form_t;

/*
 * The checkable form of an answer text; json: the request asked for application/json.
 * canon (canon_len bytes) receives the canonical value ("" for NONE); a canonical value longer
 * than canon_len - 1 is written as "h:" + 16 hex digits of its FNV-1a 64 (canon NULL or
 * canon_len 0: nothing is written).
 *
 * Rules (json = 0):
 * - the LAST line (split on \n) holding, case-insensitively, "final answer" followed by ':' or
 *   " is" ("Final answer: B", "**Final answer:** 42", "The final answer is $1,234."), or starting
 *   "Answer:" (after optional '*', '#' and spaces), gives X = the rest of that line, trimmed of
 *   whitespace, '*', backticks, surrounding quotes, a trailing '.' and surrounding parentheses or
 *   brackets; without such a line X is the whole text when it is at most SC_ANSWER_SHORT_MAX
 *   bytes (trimmed), else NONE;
 * - X is a CHOICE when a single ASCII letter ("B", "(B)", "B)", "B."), a NUMBER when [sign]['$']
 *   digits (thousands commas allowed) [.digits]['%'], else a WORD when 1..SC_ANSWER_WORD_MAX bytes,
 *   else NONE.
 * With json = 1 the whole text (whitespace and a ```json fence tolerated) must parse as JSON
 * (any value), else NONE. The first string in it (depth first, keys in sorted order) holding a
 * final answer line with a form gives that form (how the simulator writes JSON answers:
 * {"answer": "... Final answer: X"}); otherwise the form is JSON.
 */
sc_answer_form_t sc_answer_form(const char *text, int json, char *canon, size_t canon_len);

typedef enum { SC_COMPARE_SAME, SC_COMPARE_DIFFERENT, SC_COMPARE_UNCHECKABLE } sc_compare_t;

/* Both answers have a form of the same kind (not NONE): SAME when the canonical values are equal,
 * else DIFFERENT. Otherwise UNCHECKABLE. *kind (may be NULL) gets a word for the report (a static
 * string): "final-answer" (CHOICE/NUMBER/WORD), "json", or "judge" for UNCHECKABLE. */
sc_compare_t sc_answers_compare(const char *reference, const char *candidate, int json,
                                const char **kind);

/*
 * The judge call's generateContent body (camelCase JSON, a new string; @remark the caller frees
 * it with free()):
 *  systemInstruction: one text part that STARTS with exactly SC_JUDGE_PREFIX followed by the
 *    instructions (two answers to one prompt; answer_a is the strong model's, answer_b the
 *    candidate; say whether each answers the prompt correctly and whether they agree; reply with
 *    JSON only);
 *  contents: one user turn whose only text part is EXACTLY the compact JSON object
 *    {"prompt": prompt, "answer_a": reference, "answer_b": candidate} (three strings, in that key
 *    order);
 *  generationConfig: {"responseMimeType": "application/json", "responseSchema": {"type":
 *    "OBJECT", "properties": {"a_correct": {"type": "BOOLEAN"}, "b_correct": {"type": "BOOLEAN"},
 *    "agree": {"type": "BOOLEAN"}}, "required": ["a_correct", "b_correct", "agree"]},
 *    "temperature": 0}.
 * Texts are given with their lengths (NULL only with length 0: "") and must be valid UTF-8 (else
 * NULL). len (may be NULL) gets strlen of the result. NULL on allocation failure.
 */
char *sc_judge_body(const char *prompt, size_t prompt_len, const char *reference, size_t ref_len,
                    const char *candidate, size_t cand_len, size_t *len);

/* Parse the judge's answer text: 0 with *a_ok, *b_ok, *agree set (0/1; each may be NULL) when it
 * is a JSON object holding the three booleans (surrounding whitespace and a ```json fence
 * tolerated; extra keys ignored); -1 otherwise (not JSON, a key missing, a non-boolean value): no
 * evidence, and the outputs are left as they were. */
int sc_judge_verdict(const char *text, int *a_ok, int *b_ok, int *agree);

#endif
