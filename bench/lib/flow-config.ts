// GAIE's default config (src/scheduling/config.ts DEFAULT_CONFIG) with a saturation detector of
// the bench's choosing as flowControl.saturationDetector, with or without the flowControl gate:
// how the flow-control benches and the dashboard check configure llm-epp.
import { DEFAULT_CONFIG } from '../../src/scheduling/config.ts';

/** `detector`: the plugin, one flow-style YAML mapping with a `name`, e.g. {name: d, type: concurrency-detector}. */
export function defaultConfigWithDetector(detector: string, name: string, gate: boolean): string {
  const plugins = DEFAULT_CONFIG.replace('- type: single-profile-handler\n', `- type: single-profile-handler\n- ${detector}\n`);
  return `${plugins}${gate ? 'featureGates: [flowControl]\n' : ''}flowControl:\n  saturationDetector: {pluginRef: ${name}}\n`;
}
