/**
 * The ONNX protobuf schema (onnx.proto up to IR version 12), parsed at
 * load time with protobufjs. Decoded messages are protobufjs message instances: proto2 field
 * presence is kept (only fields set in the file are written back) and unknown fields are
 * preserved when decoding through `decodeMessage`, so decode → encode drops nothing.
 */
import protobuf from 'protobufjs';

/** A 64-bit integer as protobufjs decodes it (long.js instance); any {low, high, unsigned} works. */
export type Long = protobuf.Long;

// Field numbers follow onnx/onnx.proto (IR 12); TypeProto.Opaque comes from onnx-ml.proto.
const ONNX_PROTO = `
syntax = "proto2";
package onnx;

enum Version {
  _START_VERSION = 0;
  IR_VERSION_2017_10_10 = 1;
  IR_VERSION_2017_10_30 = 2;
  IR_VERSION_2017_11_3 = 3;
  IR_VERSION_2019_1_22 = 4;
  IR_VERSION_2019_3_18 = 5;
  IR_VERSION_2019_9_19 = 6;
  IR_VERSION_2020_5_8 = 7;
  IR_VERSION_2021_7_30 = 8;
  IR_VERSION_2023_5_5 = 9;
  IR_VERSION_2024_3_25 = 10;
  IR_VERSION_2025_05_12 = 11;
  IR_VERSION_2025_08_26 = 12;
  IR_VERSION = 13;
}

message AttributeProto {
  reserved 12, 16 to 19;
  reserved "v";
  enum AttributeType {
    UNDEFINED = 0;
    FLOAT = 1;
    INT = 2;
    STRING = 3;
    TENSOR = 4;
    GRAPH = 5;
    SPARSE_TENSOR = 11;
    TYPE_PROTO = 13;
    FLOATS = 6;
    INTS = 7;
    STRINGS = 8;
    TENSORS = 9;
    GRAPHS = 10;
    SPARSE_TENSORS = 12;
    TYPE_PROTOS = 14;
  }
  optional string name = 1;
  optional string ref_attr_name = 21;
  optional string doc_string = 13;
  optional AttributeType type = 20;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  optional GraphProto g = 6;
  optional SparseTensorProto sparse_tensor = 22;
  optional TypeProto tp = 14;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  repeated TensorProto tensors = 10;
  repeated GraphProto graphs = 11;
  repeated SparseTensorProto sparse_tensors = 23;
  repeated TypeProto type_protos = 15;
}

message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
  optional string doc_string = 3;
  repeated StringStringEntryProto metadata_props = 4;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  optional string domain = 7;
  optional string overload = 8;
  repeated AttributeProto attribute = 5;
  optional string doc_string = 6;
  repeated StringStringEntryProto metadata_props = 9;
  repeated NodeDeviceConfigurationProto device_configurations = 10;
}

message IntIntListEntryProto {
  optional int64 key = 1;
  repeated int64 value = 2;
}

message NodeDeviceConfigurationProto {
  optional string configuration_id = 1;
  repeated ShardingSpecProto sharding_spec = 2;
  optional int32 pipeline_stage = 3;
}

message ShardingSpecProto {
  optional string tensor_name = 1;
  repeated int64 device = 2;
  repeated IntIntListEntryProto index_to_device_group_map = 3;
  repeated ShardedDimProto sharded_dim = 4;
}

message ShardedDimProto {
  optional int64 axis = 1;
  repeated SimpleShardedDimProto simple_sharding = 2;
}

message SimpleShardedDimProto {
  oneof dim {
    int64 dim_value = 1;
    string dim_param = 2;
  }
  optional int64 num_shards = 3;
}

message TrainingInfoProto {
  optional GraphProto initialization = 1;
  optional GraphProto algorithm = 2;
  repeated StringStringEntryProto initialization_binding = 3;
  repeated StringStringEntryProto update_binding = 4;
}

message ModelProto {
  optional int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string domain = 4;
  optional int64 model_version = 5;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated StringStringEntryProto metadata_props = 14;
  repeated TrainingInfoProto training_info = 20;
  repeated FunctionProto functions = 25;
  repeated DeviceConfigurationProto configuration = 26;
}

message DeviceConfigurationProto {
  optional string name = 1;
  optional int32 num_devices = 2;
  repeated string device = 3;
}

message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
}

message TensorAnnotation {
  optional string tensor_name = 1;
  repeated StringStringEntryProto quant_parameter_tensor_names = 2;
}

message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  repeated SparseTensorProto sparse_initializer = 15;
  optional string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
  repeated TensorAnnotation quantization_annotation = 14;
  repeated StringStringEntryProto metadata_props = 16;
  reserved 3, 4, 6 to 9;
  reserved "ir_version", "producer_version", "producer_tag", "domain";
}

message TensorProto {
  enum DataType {
    UNDEFINED = 0;
    FLOAT = 1;
    UINT8 = 2;
    INT8 = 3;
    UINT16 = 4;
    INT16 = 5;
    INT32 = 6;
    INT64 = 7;
    STRING = 8;
    BOOL = 9;
    FLOAT16 = 10;
    DOUBLE = 11;
    UINT32 = 12;
    UINT64 = 13;
    COMPLEX64 = 14;
    COMPLEX128 = 15;
    BFLOAT16 = 16;
    FLOAT8E4M3FN = 17;
    FLOAT8E4M3FNUZ = 18;
    FLOAT8E5M2 = 19;
    FLOAT8E5M2FNUZ = 20;
    UINT4 = 21;
    INT4 = 22;
    FLOAT4E2M1 = 23;
    FLOAT8E8M0 = 24;
    UINT2 = 25;
    INT2 = 26;
  }
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  message Segment {
    optional int64 begin = 1;
    optional int64 end = 2;
  }
  optional Segment segment = 3;
  repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true];
  repeated bytes string_data = 6;
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional string doc_string = 12;
  optional bytes raw_data = 9;
  repeated StringStringEntryProto external_data = 13;
  enum DataLocation {
    DEFAULT = 0;
    EXTERNAL = 1;
  }
  optional DataLocation data_location = 14;
  repeated double double_data = 10 [packed = true];
  repeated uint64 uint64_data = 11 [packed = true];
  repeated StringStringEntryProto metadata_props = 16;
}

message SparseTensorProto {
  optional TensorProto values = 1;
  optional TensorProto indices = 2;
  repeated int64 dims = 3;
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
    optional string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  message Sequence {
    optional TypeProto elem_type = 1;
  }
  message Map {
    optional int32 key_type = 1;
    optional TypeProto value_type = 2;
  }
  message Optional {
    optional TypeProto elem_type = 1;
  }
  message SparseTensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  message Opaque {
    optional string domain = 1;
    optional string name = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
    Sequence sequence_type = 4;
    Map map_type = 5;
    Optional optional_type = 9;
    SparseTensor sparse_tensor_type = 8;
    Opaque opaque_type = 7;
  }
  optional string denotation = 6;
}

message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}

enum OperatorStatus {
  EXPERIMENTAL = 0;
  STABLE = 1;
}

message FunctionProto {
  optional string name = 1;
  reserved 2, 3;
  reserved "since_version", "status";
  repeated string input = 4;
  repeated string output = 5;
  repeated string attribute = 6;
  repeated AttributeProto attribute_proto = 11;
  repeated NodeProto node = 7;
  optional string doc_string = 8;
  repeated OperatorSetIdProto opset_import = 9;
  optional string domain = 10;
  optional string overload = 13;
  repeated ValueInfoProto value_info = 12;
  repeated StringStringEntryProto metadata_props = 14;
}
`;

// protobufjs finds long.js through its own dependency; int64 values then decode to exact Longs.
if (!protobuf.util.Long) throw new Error('protobufjs has no long.js support; int64 values would lose precision');
protobuf.configure();

export const onnxRoot: protobuf.Root = protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
onnxRoot.resolveAll();

const t = (name: string): protobuf.Type => onnxRoot.lookupType(`onnx.${name}`);

export const ModelProtoT = t('ModelProto');
export const GraphProtoT = t('GraphProto');
export const NodeProtoT = t('NodeProto');
export const AttributeProtoT = t('AttributeProto');
export const ValueInfoProtoT = t('ValueInfoProto');
export const TensorProtoT = t('TensorProto');
export const TensorSegmentT = t('TensorProto.Segment');
export const SparseTensorProtoT = t('SparseTensorProto');
export const TensorShapeProtoT = t('TensorShapeProto');
export const DimensionT = t('TensorShapeProto.Dimension');
export const TypeProtoT = t('TypeProto');
export const TypeProtoTensorT = t('TypeProto.Tensor');
export const OperatorSetIdProtoT = t('OperatorSetIdProto');
export const FunctionProtoT = t('FunctionProto');
export const TrainingInfoProtoT = t('TrainingInfoProto');
export const StringStringEntryProtoT = t('StringStringEntryProto');
export const TensorAnnotationT = t('TensorAnnotation');
export const DeviceConfigurationProtoT = t('DeviceConfigurationProto');
export const NodeDeviceConfigurationProtoT = t('NodeDeviceConfigurationProto');
export const ShardingSpecProtoT = t('ShardingSpecProto');
export const ShardedDimProtoT = t('ShardedDimProto');
export const SimpleShardedDimProtoT = t('SimpleShardedDimProto');
export const IntIntListEntryProtoT = t('IntIntListEntryProto');

export const TensorDataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
  FLOAT8E8M0: 24,
  UINT2: 25,
  INT2: 26,
} as const;

export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
  SPARSE_TENSOR: 11,
  SPARSE_TENSORS: 12,
  TYPE_PROTO: 13,
  TYPE_PROTOS: 14,
} as const;

export const DataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const;

/** Name of a TensorDataType code, e.g. 10 → 'FLOAT16' (or 'code 99' when unknown). */
export function dataTypeName(code: number): string {
  for (const [k, v] of Object.entries(TensorDataType)) if (v === code) return k;
  return `code ${code}`;
}

// ---- Plain shapes of the decoded messages (snake_case, as in onnx.proto) ----
// Repeated fields are always arrays on decoded/created messages; optional scalars read as
// their proto default when absent; absent sub-messages read as null.

export type Int64 = Long | number;

export interface StringStringEntryProto {
  key?: string;
  value?: string;
}

export interface OperatorSetIdProto {
  domain?: string;
  version?: Int64;
}

export interface TensorSegment {
  begin?: Int64;
  end?: Int64;
}

export interface TensorProto {
  dims: Int64[];
  data_type?: number;
  segment?: TensorSegment | null;
  float_data: number[];
  int32_data: number[];
  string_data: Uint8Array[];
  int64_data: Int64[];
  name?: string;
  doc_string?: string;
  raw_data?: Uint8Array;
  external_data: StringStringEntryProto[];
  data_location?: number;
  double_data: number[];
  uint64_data: Int64[];
  metadata_props: StringStringEntryProto[];
}

export interface SparseTensorProto {
  values?: TensorProto | null;
  indices?: TensorProto | null;
  dims: Int64[];
}

export interface Dimension {
  dim_value?: Int64;
  dim_param?: string;
  /** Oneof discriminator set by protobufjs: 'dim_value' | 'dim_param' | undefined. */
  value?: string;
  denotation?: string;
}

export interface TensorShapeProto {
  dim: Dimension[];
}

export interface TypeProtoTensor {
  elem_type?: number;
  shape?: TensorShapeProto | null;
}

export interface TypeProto {
  tensor_type?: TypeProtoTensor | null;
  sequence_type?: { elem_type?: TypeProto | null } | null;
  map_type?: { key_type?: number; value_type?: TypeProto | null } | null;
  optional_type?: { elem_type?: TypeProto | null } | null;
  sparse_tensor_type?: TypeProtoTensor | null;
  opaque_type?: { domain?: string; name?: string } | null;
  /** Oneof discriminator set by protobufjs. */
  value?: string;
  denotation?: string;
}

export interface ValueInfoProto {
  name?: string;
  type?: TypeProto | null;
  doc_string?: string;
  metadata_props: StringStringEntryProto[];
}

export interface AttributeProto {
  name?: string;
  ref_attr_name?: string;
  doc_string?: string;
  type?: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorProto | null;
  g?: GraphProto | null;
  sparse_tensor?: SparseTensorProto | null;
  tp?: TypeProto | null;
  floats: number[];
  ints: Int64[];
  strings: Uint8Array[];
  tensors: TensorProto[];
  graphs: GraphProto[];
  sparse_tensors: SparseTensorProto[];
  type_protos: TypeProto[];
}

export interface DeviceConfigurationProto {
  name?: string;
  num_devices?: number;
  device: string[];
}

export interface SimpleShardedDimProto {
  dim_value?: Int64;
  dim_param?: string;
  num_shards?: Int64;
}

export interface ShardingSpecProto {
  tensor_name?: string;
  device: Int64[];
  index_to_device_group_map: { key?: Int64; value: Int64[] }[];
  sharded_dim: { axis?: Int64; simple_sharding: SimpleShardedDimProto[] }[];
}

export interface NodeDeviceConfigurationProto {
  configuration_id?: string;
  sharding_spec: ShardingSpecProto[];
  pipeline_stage?: number;
}

export interface NodeProto {
  input: string[];
  output: string[];
  name?: string;
  op_type?: string;
  domain?: string;
  overload?: string;
  attribute: AttributeProto[];
  doc_string?: string;
  metadata_props: StringStringEntryProto[];
  device_configurations: NodeDeviceConfigurationProto[];
}

export interface TensorAnnotation {
  tensor_name?: string;
  quant_parameter_tensor_names: StringStringEntryProto[];
}

export interface GraphProto {
  node: NodeProto[];
  name?: string;
  initializer: TensorProto[];
  sparse_initializer: SparseTensorProto[];
  doc_string?: string;
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  value_info: ValueInfoProto[];
  quantization_annotation: TensorAnnotation[];
  metadata_props: StringStringEntryProto[];
}

export interface TrainingInfoProto {
  initialization?: GraphProto | null;
  algorithm?: GraphProto | null;
  initialization_binding: StringStringEntryProto[];
  update_binding: StringStringEntryProto[];
}

export interface FunctionProto {
  name?: string;
  input: string[];
  output: string[];
  attribute: string[];
  attribute_proto: AttributeProto[];
  node: NodeProto[];
  doc_string?: string;
  opset_import: OperatorSetIdProto[];
  domain?: string;
  overload?: string;
  value_info: ValueInfoProto[];
  metadata_props: StringStringEntryProto[];
}

export interface ModelProto {
  ir_version?: Int64;
  opset_import: OperatorSetIdProto[];
  producer_name?: string;
  producer_version?: string;
  domain?: string;
  model_version?: Int64;
  doc_string?: string;
  graph?: GraphProto | null;
  metadata_props: StringStringEntryProto[];
  training_info: TrainingInfoProto[];
  functions: FunctionProto[];
  configuration: DeviceConfigurationProto[];
}

// ---- Typed constructors: message instances with all repeated fields initialized ----

function creator<T>(type: protobuf.Type) {
  return (props: Partial<T> = {}): T => type.create(props as Record<string, unknown>) as unknown as T;
}

export const newModel = creator<ModelProto>(ModelProtoT);
export const newGraph = creator<GraphProto>(GraphProtoT);
export const newNode = creator<NodeProto>(NodeProtoT);
export const newAttribute = creator<AttributeProto>(AttributeProtoT);
export const newValueInfo = creator<ValueInfoProto>(ValueInfoProtoT);
export const newTensor = creator<TensorProto>(TensorProtoT);
export const newSparseTensor = creator<SparseTensorProto>(SparseTensorProtoT);
export const newTypeProto = creator<TypeProto>(TypeProtoT);
export const newOpsetId = creator<OperatorSetIdProto>(OperatorSetIdProtoT);
export const newEntry = creator<StringStringEntryProto>(StringStringEntryProtoT);

/**
 * Decodes with unknown fields preserved (protobufjs discards them by default), so fields from
 * IR versions newer than this schema survive a decode → encode round trip.
 */
export function decodeMessage<T>(type: protobuf.Type, bytes: Uint8Array): T {
  const reader = protobuf.Reader.create(bytes);
  reader.discardUnknown = false;
  return type.decode(reader) as unknown as T;
}

export function encodeMessage(type: protobuf.Type, msg: object): Uint8Array {
  return type.encode(msg as protobuf.Message).finish();
}

// ---- 64-bit helpers ----

export function isLong(v: unknown): v is Long {
  return typeof v === 'object' && v !== null && 'low' in v && 'high' in v;
}

export function toBigInt(v: Long | number | bigint | string | null | undefined): bigint {
  if (v === null || v === undefined) return 0n;
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new RangeError(`not an integer: ${v}`);
    return BigInt(v);
  }
  if (typeof v === 'string') return BigInt(v);
  const bits = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return v.unsigned ? bits : BigInt.asIntN(64, bits);
}

/** Converts an int64 field value to a JS number; null/undefined (absent field) read as 0. */
export function toNumber(v: Long | number | string | null | undefined): number {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new RangeError(`not a safe integer: ${v}`);
    return v;
  }
  const b = toBigInt(v);
  if (b > BigInt(Number.MAX_SAFE_INTEGER) || b < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError(`64-bit value ${b} does not fit a safe JS integer`);
  }
  return Number(b);
}

/** A long.js value for a bigint (two's complement for signed). */
export function longFromBigInt(b: bigint, unsigned = false): Long {
  const u = BigInt.asUintN(64, b);
  const lo = Number(u & 0xffffffffn) | 0;
  const hi = Number(u >> 32n) | 0;
  return new protobuf.util.LongBits(lo, hi).toLong(unsigned);
}
