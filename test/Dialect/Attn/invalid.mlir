// RUN: attnc-opt %s --split-input-file --verify-diagnostics --allow-unregistered-dialect

/// Every verifier error of the attn dialect, one case each.

func.func @negative_batch(%q: memref<2x4x16x8xf32>, %k: memref<1x4x16x8xf32>, %o: memref<2x4x16x8xf32>) {
  // expected-error @+1 {{'attn.attention' op expects the batch size of key (dim 0 = 1) to match query (dim 0 = 2)}}
  attn.attention q(%q : memref<2x4x16x8xf32>) k(%k : memref<1x4x16x8xf32>) v(%k : memref<1x4x16x8xf32>) out(%o : memref<2x4x16x8xf32>) kernel = softmax align = start scale = 1.0
  return
}

// -----

func.func @negative_value_heads(%q: memref<1x4x16x8xf32>, %k: memref<1x4x16x8xf32>, %v: memref<1x2x16x8xf32>) {
  // expected-error @+1 {{expects the head count of value (dim 1 = 2) to match key (dim 1 = 4)}}
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%k : memref<1x4x16x8xf32>) v(%v : memref<1x2x16x8xf32>) out(%q : memref<1x4x16x8xf32>) kernel = softmax align = start scale = 1.0
  return
}

// -----

func.func @negative_key_length(%q: memref<1x4x16x8xf32>, %v: memref<1x4x12x8xf32>) {
  // expected-error @+1 {{expects the key length of value (dim 2 = 12) to match key (dim 2 = 16)}}
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%v : memref<1x4x12x8xf32>) out(%q : memref<1x4x16x8xf32>) kernel = softmax align = start scale = 1.0
  return
}

// -----

func.func @negative_query_length(%q: memref<1x4x16x8xf32>, %o: memref<1x4x15x8xf32>) {
  // expected-error @+1 {{expects the query length of out (dim 2 = 15) to match query (dim 2 = 16)}}
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%o : memref<1x4x15x8xf32>) kernel = softmax align = start scale = 1.0
  return
}

// -----

func.func @negative_head_dim(%q: memref<1x4x16x8xf32>, %k: memref<1x4x16x4xf32>) {
  // expected-error @+1 {{expects the head dim of key (dim 3 = 4) to match query (dim 3 = 8)}}
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%k : memref<1x4x16x4xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) kernel = softmax align = start scale = 1.0
  return
}

// -----

func.func @negative_value_dim(%q: memref<1x4x16x8xf32>, %o: memref<1x4x16x4xf32>) {
  // expected-error @+1 {{expects the value dim of out (dim 3 = 4) to match value (dim 3 = 8)}}
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%o : memref<1x4x16x4xf32>) kernel = softmax align = start scale = 1.0
  return
}

// -----

func.func @negative_out_heads(%q: memref<1x4x16x8xf32>, %o: memref<1x2x16x8xf32>) {
  // expected-error @+1 {{expects the head count of out (dim 1 = 2) to match query (dim 1 = 4)}}
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%o : memref<1x2x16x8xf32>) kernel = softmax align = start scale = 1.0
  return
}

// -----

func.func @negative_zero_kv_heads(%q: memref<1x4x16x8xf32>, %k: memref<1x0x16x8xf32>) {
  // expected-error @+1 {{expects at least one KV head}}
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%k : memref<1x0x16x8xf32>) v(%k : memref<1x0x16x8xf32>) out(%q : memref<1x4x16x8xf32>) kernel = softmax align = start scale = 1.0
  return
}

// -----

func.func @negative_gqa_indivisible(%q: memref<1x6x16x8xf32>, %k: memref<1x4x16x8xf32>) {
  // expected-error @+1 {{expects the query heads (6) to be a multiple of the KV heads (4) for grouped-query attention}}
  attn.attention q(%q : memref<1x6x16x8xf32>) k(%k : memref<1x4x16x8xf32>) v(%k : memref<1x4x16x8xf32>) out(%q : memref<1x6x16x8xf32>) kernel = softmax align = start scale = 1.0
  return
}

// -----

func.func @negative_mixed_types(%q: memref<1x4x16x8xf32>, %k: memref<1x4x16x8xbf16>) {
  // expected-error @+1 {{expects query, key and value of one element type, got 'f32', 'bf16' and 'bf16'}}
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%k : memref<1x4x16x8xbf16>) v(%k : memref<1x4x16x8xbf16>) out(%q : memref<1x4x16x8xf32>) kernel = softmax align = start scale = 1.0
  return
}

// -----

func.func @negative_rank(%q: memref<4x16x8xf32>) {
  // expected-error @+1 {{operand #0 must be 4D memref of 32-bit float or bfloat16 type or 16-bit float or 8-bit signless integer values}}
  attn.attention q(%q : memref<4x16x8xf32>) k(%q : memref<4x16x8xf32>) v(%q : memref<4x16x8xf32>) out(%q : memref<4x16x8xf32>) kernel = softmax align = start scale = 1.0
  return
}

// -----

func.func @negative_lse_sigmoid(%q: memref<1x4x16x8xf32>, %lse: memref<1x4x16xf32>) {
  // expected-error @+1 {{expects no lse output with kernel = sigmoid: sigmoid attention has no normaliser}}
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) lse(%lse : memref<1x4x16xf32>) kernel = sigmoid align = start scale = 1.0
  return
}

// -----

func.func @negative_lse_shape(%q: memref<1x4x16x8xf32>, %lse: memref<1x4x8xf32>) {
  // expected-error @+1 {{expects the query length of lse (dim 2 = 8) to match query (dim 2 = 16)}}
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) lse(%lse : memref<1x4x8xf32>) kernel = softmax align = start scale = 1.0
  return
}

// -----

func.func @negative_scale_inf(%q: memref<1x4x16x8xf32>) {
  // expected-error @+1 {{expects a finite scale}}
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) kernel = softmax align = start scale = 0x7FF0000000000000
  return
}

// -----

func.func @negative_extra_type(%q: memref<1x4x16x8xf32>, %t: vector<4xf32>) {
  // expected-error @+1 {{expects extra #0 to be a memref or an integer, index or float scalar, got 'vector<4xf32>'}}
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) extras(%t : vector<4xf32>) kernel = softmax align = start scale = 1.0
  return
}

// -----

func.func @negative_mask_signature(%q: memref<1x4x16x8xf32>) {
  // expected-error @+1 {{expects the mask region to take (index, index, index, index), got (index, index, index)}}
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) kernel = softmax align = start scale = 1.0
  mask {
  ^bb0(%b: index, %h: index, %i: index):
    %c = arith.cmpi sle, %h, %i : index
    attn.yield %c : i1
  }
  return
}

// -----

func.func @negative_score_signature(%q: memref<1x4x16x8xf32>) {
  // expected-error @+1 {{expects the score region to take (f32, index, index, index, index), got (f16, index, index, index, index)}}
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) kernel = softmax align = start scale = 1.0
  score {
  ^bb0(%s: f16, %b: index, %h: index, %i: index, %j: index):
    %one = arith.constant 1.0 : f32
    attn.yield %one : f32
  }
  return
}

// -----

func.func @negative_gate_yield_type(%q: memref<1x4x16x8xf32>) {
  // expected-error @+1 {{expects the gate region to yield 'f32', got 'i1'}}
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) kernel = softmax align = start scale = 1.0
  gate {
  ^bb0(%x: f32, %b: index, %h: index, %i: index, %d: index):
    %c = arith.cmpi sle, %h, %i : index
    attn.yield %c : i1
  }
  return
}

// -----

func.func @negative_terminator(%q: memref<1x4x16x8xf32>) {
  // expected-error @+1 {{expects the mask region to end with attn.yield}}
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) kernel = softmax align = start scale = 1.0
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    "test.terminator"() : () -> ()
  }
  return
}

// -----

func.func @negative_foreign_op(%q: memref<1x4x16x8xf32>, %t: memref<4xf32>) {
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) extras(%t : memref<4xf32>) kernel = softmax align = start scale = 1.0
  score {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    // expected-error @+1 {{'memref.load' op is not allowed in the score region of attn.attention: only arith, math and attn ops may appear there}}
    %x = memref.load %t[%h] : memref<4xf32>
    attn.yield %x : f32
  }
  return
}

// -----

func.func @negative_side_effect(%q: memref<1x4x16x8xf32>) {
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) extras(%q : memref<1x4x16x8xf32>) kernel = softmax align = start scale = 1.0
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    // expected-error @+1 {{'attn.attention' op has side effects; the mask region must be pure}}
    attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) kernel = softmax align = start scale = 1.0
    %c = arith.cmpi sle, %j, %i : index
    attn.yield %c : i1
  }
  return
}

// -----

func.func @negative_capture(%q: memref<1x4x16x8xf32>, %w: index) {
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) kernel = softmax align = start scale = 1.0
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    // expected-error @+1 {{'arith.cmpi' op uses a value defined outside the mask region that is neither a constant nor an extra of attn.attention; pass parameters and tensors through extras(...)}}
    %c = arith.cmpi sle, %j, %w : index
    attn.yield %c : i1
  }
  return
}

// -----

func.func @negative_read_rank(%q: memref<1x4x16x8xf32>, %t: memref<4x4xf32>) {
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) extras(%t : memref<4x4xf32>) kernel = softmax align = start scale = 1.0
  score {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    // expected-error @+1 {{'attn.read' op expects 2 indices for a rank-2 tensor, got 1}}
    %x = attn.read %t[%h] : memref<4x4xf32>
    attn.yield %x : f32
  }
  return
}

// -----

func.func @negative_read_outside(%t: memref<4xf32>, %i: index) {
  // expected-error @+1 {{'attn.read' op expects parent op 'attn.attention'}}
  %x = attn.read %t[%i] : memref<4xf32>
  return
}

// -----

func.func @negative_yield_outside(%x: f32) {
  // expected-error @+1 {{'attn.yield' op expects parent op 'attn.attention'}}
  attn.yield %x : f32
}

// -----

func.func @negative_size_outside() {
  // expected-error @+1 {{'attn.size' op expects parent op 'attn.attention'}}
  %t = attn.size kv_len
  return
}

// -----

func.func @negative_schedule(%q: memref<1x4x16x8xf32>) {
  // expected-error @+1 {{expects positive tile sizes, got block_q = 0 and block_k = 64}}
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) kernel = softmax align = start scale = 1.0 schedule = #attn.schedule<block_q = 0, block_k = 64>
  return
}

// -----

func.func @negative_listed_float(%q: memref<1x4x16x8xf32>, %l: memref<4x8xf32>, %n: index) {
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) extras(%l, %n : memref<4x8xf32>, index) kernel = softmax align = start scale = 1.0
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    // expected-error @+1 {{'attn.listed' op expects a list of integers, got 'f32'}}
    %x = attn.listed %j in %l[%h] count %n : memref<4x8xf32>
    attn.yield %x : i1
  }
  return
}

// -----

func.func @negative_listed_rank(%q: memref<1x4x16x8xf32>, %l: memref<4x8xi32>, %n: index) {
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) extras(%l, %n : memref<4x8xi32>, index) kernel = softmax align = start scale = 1.0
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    // expected-error @+1 {{'attn.listed' op expects 1 prefix indices for a rank-2 list, got 2}}
    %x = attn.listed %j in %l[%b, %h] count %n : memref<4x8xi32>
    attn.yield %x : i1
  }
  return
}

// -----

func.func @negative_topk_zero(%q: memref<1x4x16x8xf32>) {
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) kernel = softmax align = start scale = 1.0
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    // expected-error @+1 {{'attn.topk' op expects a positive top_k, block_q and block_k, got 0, 4 and 4}}
    %s = attn.topk %b, %h, %i, %j {top_k = 0, block_q = 4, block_k = 4}
    attn.yield %s : i1
  }
  return
}

// -----

func.func @negative_topk_in_score(%q: memref<1x4x16x8xf32>) {
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>) v(%q : memref<1x4x16x8xf32>) out(%q : memref<1x4x16x8xf32>) kernel = softmax align = start scale = 1.0
  score {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    // expected-error @+1 {{'attn.topk' op is only allowed in the mask region}}
    %t = attn.topk %b, %h, %i, %j {top_k = 1, block_q = 4, block_k = 4}
    %z = arith.constant 0.0 : f32
    %r = arith.select %t, %s, %z : f32
    attn.yield %r : f32
  }
  return
}

// -----

// Paged keys and values: the block table names the batch.
func.func @paged_table_batch(%q: memref<2x4x1x64xbf16>, %k: memref<9x2x16x64xbf16, strided<[?, 1024, 64, 1]>>,
                             %o: memref<2x4x1x64xbf16>, %t: memref<3x4xi32>, %l: memref<2xi32>) {
  // expected-error @+1 {{'attn.attention' op expects the batch size of block table (dim 0 = 3) to match query (dim 0 = 2)}}
  attn.attention q(%q : memref<2x4x1x64xbf16>) k(%k : memref<9x2x16x64xbf16, strided<[?, 1024, 64, 1]>>) v(%k : memref<9x2x16x64xbf16, strided<[?, 1024, 64, 1]>>) out(%o : memref<2x4x1x64xbf16>) paged(%t, %l : memref<3x4xi32>, memref<2xi32>) kernel = softmax align = end scale = 1.0
  return
}

// -----

func.func @paged_page_size(%q: memref<2x4x1x64xbf16>, %k: memref<9x2x16x64xbf16, strided<[?, 1024, 64, 1]>>, %v: memref<9x2x8x64xbf16, strided<[?, 512, 64, 1]>>,
                           %o: memref<2x4x1x64xbf16>, %t: memref<2x4xi32>, %l: memref<2xi32>) {
  // expected-error @+1 {{'attn.attention' op expects the key length of value (dim 2 = 8) to match key (dim 2 = 16)}}
  attn.attention q(%q : memref<2x4x1x64xbf16>) k(%k : memref<9x2x16x64xbf16, strided<[?, 1024, 64, 1]>>) v(%v : memref<9x2x8x64xbf16, strided<[?, 512, 64, 1]>>) out(%o : memref<2x4x1x64xbf16>) paged(%t, %l : memref<2x4xi32>, memref<2xi32>) kernel = softmax align = end scale = 1.0
  return
}

// -----

func.func @quant_without_paging(%q: memref<2x4x1x64xbf16>, %k: memref<2x2x16x64xi8>, %o: memref<2x4x1x64xbf16>,
                                %s: memref<2x2x16x2xf32>) {
  // expected-error @+1 {{'attn.attention' op expects quantized keys and values only in the paged form}}
  attn.attention q(%q : memref<2x4x1x64xbf16>) k(%k : memref<2x2x16x64xi8>) v(%k : memref<2x2x16x64xi8>) out(%o : memref<2x4x1x64xbf16>) scales(%s, %s : memref<2x2x16x2xf32>, memref<2x2x16x2xf32>) kv_quant = q8 kernel = softmax align = start scale = 1.0
  return
}

// -----

func.func @quant_without_scales(%q: memref<2x4x1x64xbf16>, %k: memref<9x2x16x64xi8, strided<[?, 1024, 64, 1]>>,
                                %o: memref<2x4x1x64xbf16>, %t: memref<2x4xi32>, %l: memref<2xi32>) {
  // expected-error @+1 {{'attn.attention' op expects scales(...) with kv_quant = q8}}
  attn.attention q(%q : memref<2x4x1x64xbf16>) k(%k : memref<9x2x16x64xi8, strided<[?, 1024, 64, 1]>>) v(%k : memref<9x2x16x64xi8, strided<[?, 1024, 64, 1]>>) out(%o : memref<2x4x1x64xbf16>) paged(%t, %l : memref<2x4xi32>, memref<2xi32>) kv_quant = q8 kernel = softmax align = end scale = 1.0
  return
}

// -----

func.func @q4_row_bytes(%q: memref<2x4x1x64xbf16>, %k: memref<9x2x16x64xi8, strided<[?, 1024, 64, 1]>>, %o: memref<2x4x1x64xbf16>,
                        %t: memref<2x4xi32>, %l: memref<2xi32>, %s: memref<9x2x16x2xf32, strided<[?, 32, 2, 1]>>) {
  // expected-error @+1 {{'attn.attention' op expects key codes of 32 bytes per row for 64 features with q4, got 64}}
  attn.attention q(%q : memref<2x4x1x64xbf16>) k(%k : memref<9x2x16x64xi8, strided<[?, 1024, 64, 1]>>) v(%k : memref<9x2x16x64xi8, strided<[?, 1024, 64, 1]>>) out(%o : memref<2x4x1x64xbf16>) paged(%t, %l : memref<2x4xi32>, memref<2xi32>) scales(%s, %s : memref<9x2x16x2xf32, strided<[?, 32, 2, 1]>>, memref<9x2x16x2xf32, strided<[?, 32, 2, 1]>>) kv_quant = q4 kernel = softmax align = end scale = 1.0
  return
}

// -----

func.func @q8_groups(%q: memref<2x4x1x64xbf16>, %k: memref<9x2x16x64xi8, strided<[?, 1024, 64, 1]>>, %o: memref<2x4x1x64xbf16>,
                     %t: memref<2x4xi32>, %l: memref<2xi32>, %s: memref<9x2x16x3xf32, strided<[?, 48, 3, 1]>>) {
  // expected-error @+1 {{'attn.attention' op expects the key scale groups (3) to split 64 features evenly}}
  attn.attention q(%q : memref<2x4x1x64xbf16>) k(%k : memref<9x2x16x64xi8, strided<[?, 1024, 64, 1]>>) v(%k : memref<9x2x16x64xi8, strided<[?, 1024, 64, 1]>>) out(%o : memref<2x4x1x64xbf16>) paged(%t, %l : memref<2x4xi32>, memref<2xi32>) scales(%s, %s : memref<9x2x16x3xf32, strided<[?, 48, 3, 1]>>, memref<9x2x16x3xf32, strided<[?, 48, 3, 1]>>) kv_quant = q8 kernel = softmax align = end scale = 1.0
  return
}

// -----

func.func @paged_feature_stride(%q: memref<2x4x1x64xbf16>, %k: memref<9x2x16x64xbf16, strided<[4096, 2048, 128, 2]>>,
                                %o: memref<2x4x1x64xbf16>, %t: memref<2x4xi32>, %l: memref<2xi32>) {
  // expected-error @+1 {{'attn.attention' op expects the key pages to be row-major within a page, with a dynamic page stride (strided<[?, ...]>)}}
  attn.attention q(%q : memref<2x4x1x64xbf16>) k(%k : memref<9x2x16x64xbf16, strided<[4096, 2048, 128, 2]>>) v(%k : memref<9x2x16x64xbf16, strided<[4096, 2048, 128, 2]>>) out(%o : memref<2x4x1x64xbf16>) paged(%t, %l : memref<2x4xi32>, memref<2xi32>) kernel = softmax align = end scale = 1.0
  return
}

// -----

func.func @i8_query(%q: memref<1x4x16x8xi8>, %o: memref<1x4x16x8xf32>) {
  // expected-error @+1 {{'attn.attention' op expects a float query, got 'i8' (i8 is for quantized paged keys and values)}}
  attn.attention q(%q : memref<1x4x16x8xi8>) k(%q : memref<1x4x16x8xi8>) v(%q : memref<1x4x16x8xi8>) out(%o : memref<1x4x16x8xf32>) kernel = softmax align = start scale = 1.0
  return
}

// -----

func.func @topk_paged(%q: memref<2x4x1x64xbf16>, %k: memref<9x2x16x64xbf16, strided<[?, 1024, 64, 1]>>,
                      %o: memref<2x4x1x64xbf16>, %t: memref<2x4xi32>, %l: memref<2xi32>) {
  attn.attention q(%q : memref<2x4x1x64xbf16>) k(%k : memref<9x2x16x64xbf16, strided<[?, 1024, 64, 1]>>) v(%k : memref<9x2x16x64xbf16, strided<[?, 1024, 64, 1]>>) out(%o : memref<2x4x1x64xbf16>) paged(%t, %l : memref<2x4xi32>, memref<2xi32>) kernel = softmax align = end scale = 1.0
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    // expected-error @+1 {{'attn.topk' op is not supported with paged keys and values}}
    %s = attn.topk %b, %h, %i, %j {top_k = 1, block_q = 4, block_k = 4}
    attn.yield %s : i1
  }
  return
}

// -----

// An identity layout fixes the page stride: a pool's pages could not be read in place.
func.func @paged_identity_layout(%q: memref<2x4x1x64xbf16>, %k: memref<9x2x16x64xbf16>,
                                 %o: memref<2x4x1x64xbf16>, %t: memref<2x4xi32>, %l: memref<2xi32>) {
  // expected-error @+1 {{'attn.attention' op expects the key pages to be row-major within a page, with a dynamic page stride (strided<[?, ...]>), got 'memref<9x2x16x64xbf16>'}}
  attn.attention q(%q : memref<2x4x1x64xbf16>) k(%k : memref<9x2x16x64xbf16>) v(%k : memref<9x2x16x64xbf16>) out(%o : memref<2x4x1x64xbf16>) paged(%t, %l : memref<2x4xi32>, memref<2xi32>) kernel = softmax align = end scale = 1.0
  return
}

// -----

func.func @one_scale(%q: memref<2x4x1x64xbf16>, %k: memref<9x2x16x64xi8, strided<[?, 1024, 64, 1]>>,
                     %o: memref<2x4x1x64xbf16>, %t: memref<2x4xi32>, %l: memref<2xi32>,
                     %s: memref<9x2x16x2xf32, strided<[?, 32, 2, 1]>>) {
  // expected-error @+1 {{'attn.attention' op expects both key and value scales, or neither}}
  "attn.attention"(%q, %k, %k, %o, %t, %l, %s) <{align = 1 : i32, kernel = 0 : i32, kvQuant = 0 : i32, operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 1, 1, 1, 0>, scale = 1.000000e+00 : f64}> ({}, {}, {}) : (memref<2x4x1x64xbf16>, memref<9x2x16x64xi8, strided<[?, 1024, 64, 1]>>, memref<9x2x16x64xi8, strided<[?, 1024, 64, 1]>>, memref<2x4x1x64xbf16>, memref<2x4xi32>, memref<2xi32>, memref<9x2x16x2xf32, strided<[?, 32, 2, 1]>>) -> ()
  return
}
