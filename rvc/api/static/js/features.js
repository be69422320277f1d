// What this server offers, read from its OpenAPI document: the page lights up saved voices, the RVC model
// field's name and output formats only where the routes have them, and takes parameter ranges from the
// schema of the stored defaults (the API's contract) rather than from a copy.

import { getJson } from "./api.js";

function resolve(spec, schema) {
  let current = schema;
  for (let depth = 0; current && depth < 8; depth += 1) {
    if (current.$ref) {
      const path = current.$ref.replace(/^#\//, "").split("/");
      current = path.reduce((node, key) => node?.[key], spec);
    } else if (current.anyOf || current.oneOf) {
      // `X | None` fields: the non-null branch carries the type and the range
      const branches = current.anyOf || current.oneOf;
      const chosen = branches.find((branch) => branch.type !== "null");
      current = chosen ? { ...chosen, description: current.description, default: current.default } : null;
    } else {
      return current;
    }
  }
  return current;
}

function formProperties(spec, path, contentType = "multipart/form-data") {
  const schema = spec.paths?.[path]?.post?.requestBody?.content?.[contentType]?.schema;
  const properties = resolve(spec, schema)?.properties || {};
  return Object.fromEntries(Object.entries(properties).map(([name, value]) => [name, resolve(spec, value)]));
}

function enumOf(schema) {
  return Array.isArray(schema?.enum) && schema.enum.length ? schema.enum.map(String) : null;
}

// rvc/processing/formats.py's formats, for a server whose `format` field publishes no enum of its own
const KNOWN_FORMATS = ["wav", "wav_float", "flac", "opus", "mp3", "aac", "pcm"];

export const NO_FEATURES = {
  available: false,
  paths: {},
  synthesisFields: {},
  conversionFields: {},
  parameterSchemas: {},
  rvcField: "voice",
  savedVoiceField: null,
  formats: null,
};

export async function detectFeatures() {
  const spec = await getJson("/openapi.json");
  const synthesisFields = formProperties(spec, "/synthesize/sse");
  const conversionFields = formProperties(spec, "/rvc");
  const rvcField = "rvc_model" in synthesisFields ? "rvc_model" : "voice";
  // `voice` names a saved voice only once the RVC model has a field of its own
  const savedVoiceField = spec.paths?.["/voices"]?.get && rvcField !== "voice" && "voice" in synthesisFields
    ? "voice" : null;
  const defaults = resolve(spec, spec.components?.schemas?.SynthesisDefaults) || {};
  const parameterSchemas = Object.fromEntries(
    Object.entries(defaults.properties || {}).map(([name, value]) => [name, resolve(spec, value)]),
  );
  const speech = formProperties(spec, "/v1/audio/speech", "application/json");
  const formats = "format" in synthesisFields
    ? enumOf(synthesisFields.format) || enumOf(speech.response_format) || KNOWN_FORMATS
    : null;
  return {
    available: true, paths: spec.paths || {}, synthesisFields, conversionFields, parameterSchemas,
    rvcField, savedVoiceField, formats,
  };
}
