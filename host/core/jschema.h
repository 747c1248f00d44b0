/* jschema.h - the response and parameter schemas of Gemini's structured output and function
 * declarations: check that a schema is one, validate an instance against it, and make a
 * deterministic valid instance of it. Two dialects: Gemini's OpenAPI-subset Schema
 * (responseSchema, FunctionDeclaration.parameters) and JSON Schema (responseJsonSchema,
 * parametersJsonSchema). */
#ifndef SC_JSCHEMA_H
#define SC_JSCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "host/core/status.h"

#define SC_JSCHEMA_DEPTH_MAX 32 /* nesting of a schema or an instance that is checked at all */

typedef enum {
    SC_JSCHEMA_OPENAPI = 0, /* Gemini Schema: type STRING|NUMBER|INTEGER|BOOLEAN|ARRAY|OBJECT|NULL
                             * (any case), properties, required, items, enum, nullable, anyOf,
                             * format, minItems, maxItems, minLength, maxLength, pattern, minimum,
                             * maximum, minProperties, maxProperties, propertyOrdering, title,
                             * description, example, default; snake_case spellings accepted */
    SC_JSCHEMA_JSON,        /* JSON Schema subset: type (string or array), properties, required,
                             * items, prefixItems, enum, const, anyOf, oneOf, allOf, $ref, $defs,
                             * additionalProperties, minimum, maximum, exclusiveMinimum,
                             * exclusiveMaximum, minItems, maxItems, minLength, maxLength, pattern,
                             * format, title, description, default, examples, $schema, $id */
} sc_jschema_dialect_t;

/*
 * Check that schema (borrowed) is a schema of the dialect: every keyword known, each of the
 * right type. path names the schema in errors (e.g. "generationConfig.responseSchema").
 * On success, when normalized is not NULL, *normalized is a new reference to a copy with every
 * keyword in its camelCase spelling (property names and values untouched).
 * SC_ERR_INVALID with a one-line reason naming the offending keyword's path
 * ("generationConfig.responseSchema.properties.city.typ: unknown keyword").
 * Also rejected: a min above its max (minItems/maxItems, minLength/maxLength,
 * minProperties/maxProperties, minimum/maximum), an OPENAPI required name that no property
 * declares, a $ref other than "#" or "#/$defs/NAME" or not resolving in the root's $defs, a
 * keyword given in both spellings. In the JSON dialect true and false are schemas too.
 * @remark the caller frees *normalized (json_decref); it is NULL on any error.
 */
sc_status_t sc_jschema_check(const json_t *schema, sc_jschema_dialect_t d, const char *path,
                             json_t **normalized, char *err, size_t errlen);

/* 1 when instance (borrowed) is valid against schema (a checked, normalized schema); 0 when not,
 * with the reason and the instance path ("$.items[2].price: must be a number") in err.
 * format is not enforced. pattern is compiled as a POSIX extended regular expression once the
 * ECMA-262 shorthands \d \s \w, their negations and (?: groups are translated; one that does
 * not compile is skipped. A NULL schema accepts anything. */
int sc_jschema_validate(const json_t *schema, sc_jschema_dialect_t d, const json_t *instance,
                        char *err, size_t errlen);

/* A valid instance of schema (checked, normalized), the same for the same seed. New reference;
 * NULL on allocation failure or when the schema cannot be satisfied (e.g. an empty enum).
 * Every property is made (propertyOrdering first), nullable values are never null, arrays get
 * minItems to minItems+2 items, strings follow pattern, format date/date-time or are word-like.
 * Past a few $ref hops only what is required is made, so recursive schemas stay finite.
 * @remark the caller frees the instance (json_decref). */
json_t *sc_jschema_instance(const json_t *schema, sc_jschema_dialect_t d, uint64_t seed);

#endif
