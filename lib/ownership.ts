/**
 * How netmesh marks what it writes outside its own namespace: the field manager of its writes
 * and the `app.kubernetes.io/managed-by` value on the objects. One value for the Network
 * operator's CNI objects and the injector's Envoy bootstrap copies, so that the chart's
 * admission policy (charts/netmesh/templates/validating-admission-policy.yaml) confines both with one rule.
 */
export const FIELD_MANAGER = 'netmesh-operator';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
