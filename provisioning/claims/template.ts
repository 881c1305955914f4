// Provisioning templates: how a device's parameters become the device a claim creates — its
// id (e.g. `sensor-${SerialNumber}`), attributes and group memberships. Checked once, when the
// claim batch is created, so a claim can only fail on the parameters a device sends.
import { isDeviceId, type DeviceId } from '../../registry/ids.js';
import type { ClaimTemplate, JsonObject } from '../../registry/model.js';
import { ClaimError } from './errors.js';

const NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const REFERENCE = /\$\{([^}]*)\}/g;
const DEVICE_ID_LITERAL = /^[A-Za-z0-9._:-]*$/;
const MAX_VALUE = 256;

/** The parameter names a string refers to as ${Name}. */
function references(text: string): string[] {
  return [...text.matchAll(REFERENCE)].map((m) => m[1]!);
}

function invalid(detail: string): ClaimError {
  return new ClaimError('template_invalid', detail);
}

/** Every string inside a JSON value, wherever it sits. */
function* strings(value: unknown): Generator<string> {
  if (typeof value === 'string') yield value;
  else if (Array.isArray(value)) for (const item of value) yield* strings(item);
  else if (value && typeof value === 'object') for (const item of Object.values(value)) yield* strings(item);
}

/** A template as stored: checked, with its optional parts filled in. */
export function checkTemplate(input: { deviceId: string; parameters: ClaimTemplate['parameters']; attributes?: JsonObject; groups?: string[] }): ClaimTemplate {
  const parameters = input.parameters;
  for (const [name, spec] of Object.entries(parameters)) {
    if (!NAME.test(name)) throw invalid(`parameter name ${JSON.stringify(name)}`);
    if (spec.pattern !== undefined) {
      try {
        new RegExp(spec.pattern, 'u');
      } catch {
        throw invalid(`pattern of ${name} is not a regular expression`);
      }
    }
  }
  const named = references(input.deviceId);
  // Without a parameter in it, every device of the batch would claim the same id.
  if (named.length === 0) throw invalid('deviceId names no parameter');
  for (const name of named) {
    const spec = parameters[name];
    if (!spec) throw invalid(`deviceId names undeclared parameter ${JSON.stringify(name)}`);
    if (spec.required === false) throw invalid(`deviceId names optional parameter ${name}`);
  }
  if (!DEVICE_ID_LITERAL.test(input.deviceId.replace(REFERENCE, ''))) throw invalid('deviceId has characters a device id may not have');
  const attributes = input.attributes ?? {};
  for (const text of strings(attributes)) for (const name of references(text)) if (!parameters[name]) throw invalid(`attributes name undeclared parameter ${JSON.stringify(name)}`);
  return { deviceId: input.deviceId, parameters, attributes, groups: [...new Set(input.groups ?? [])] };
}

export interface RenderedBinding {
  deviceId: DeviceId;
  parameters: Record<string, string>;
  attributes: JsonObject;
  groups: string[];
}

function refused(detail: string): ClaimError {
  return new ClaimError('claim_parameters_invalid', detail);
}

/** Fills ${Name} in; undefined when it names a parameter that was not given. */
function fill(text: string, values: Record<string, string>): string | undefined {
  let missing = false;
  const filled = text.replace(REFERENCE, (_m, name: string) => {
    const value = values[name];
    if (value === undefined) missing = true;
    return value ?? '';
  });
  return missing ? undefined : filled;
}

/** Attributes with parameters filled in; a value naming an absent (optional) parameter is left out. */
function fillAttributes(value: unknown, values: Record<string, string>): unknown {
  if (typeof value === 'string') return fill(value, values);
  if (Array.isArray(value)) return value.map((v) => fillAttributes(v, values)).filter((v) => v !== undefined);
  if (value && typeof value === 'object') {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) {
      const filled = fillAttributes(v, values);
      if (filled !== undefined) out[k] = filled;
    }
    return out;
  }
  return value;
}

/** The device a claim with these parameters creates, or claim_parameters_invalid. */
export function renderBinding(template: ClaimTemplate, given: Record<string, unknown>): RenderedBinding {
  const values: Record<string, string> = {};
  for (const [name, value] of Object.entries(given)) {
    const spec = template.parameters[name];
    if (!spec) throw refused(`unknown parameter ${JSON.stringify(name)}`);
    if (typeof value !== 'string' || value.length > MAX_VALUE) throw refused(`${name} must be a string of at most ${MAX_VALUE} characters`);
    if (spec.pattern !== undefined && !new RegExp(`^(?:${spec.pattern})$`, 'u').test(value)) throw refused(`${name} does not match its pattern`);
    values[name] = value;
  }
  for (const [name, spec] of Object.entries(template.parameters)) if (spec.required !== false && values[name] === undefined) throw refused(`${name} is required`);
  const deviceId = fill(template.deviceId, values);
  if (!isDeviceId(deviceId)) throw refused('the device id they make is not a valid device id');
  return { deviceId, parameters: values, attributes: fillAttributes(template.attributes, values) as JsonObject, groups: template.groups };
}
