// Behavioural model of the Lattice ECP5 DP16KD block RAM, for simulating the netlists that
// hw.common.bram.PipelinedRAM elaborates to on ECP5. Written from the ECP5 memory usage guide
// (Lattice TN1264): a word address on AD[13:s] (s = 0, 1, 2, 3, 4, 5 for 1, 2, 4, 9, 18, 36
// bits), byte enables on AD[1:0] at 18 bits and AD[3:0] in 36-bit pseudo-dual-port mode (write
// on port A, read on port B, data on DIA/DIB and DOA/DOB), a read latch loaded on the clock
// edge under CE, and with REGMODE=OUTREG an output register loaded under OCE.
// Only what PipelinedRAM uses is modelled: both ports the same width, CS tied low, no reset;
// anything else stops the simulation with an error.
`timescale 1ns/1ps
module DP16KD (
  input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9,
  input DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
  input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
  input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
  output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9,
  output DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
  input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9,
  input DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
  input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
  input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
  output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9,
  output DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC";
  parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter CSDECODE_A = "0b000";
  parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL";
  parameter WRITEMODE_B = "NORMAL";
  parameter GSR = "ENABLED";

  localparam W = DATA_WIDTH_B;
  localparam S = (W == 1) ? 0 : (W == 2) ? 1 : (W == 4) ? 2 : (W == 9) ? 3 : (W == 18) ? 4 : 5;
  localparam DEPTH = 16384 >> S;

  wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9,
                     DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
  wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9,
                     DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
  wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3,
                     ADA2, ADA1, ADA0};
  wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3,
                     ADB2, ADB1, ADB0};
  wire [35:0] wdata = (W == 36) ? {dib, dia} : {18'b0, dia};
  // byte (9-bit) enables of a write
  wire [3:0] be = (W == 36) ? ada[3:0] : (W == 18) ? {2'b00, ada[1:0]} : 4'b0001;

  reg [35:0] mem [0:DEPTH-1];
  reg [35:0] latch = 0;
  reg [35:0] outreg = 0;
  integer i;
  initial begin
    if (DATA_WIDTH_A != DATA_WIDTH_B || !(W == 1 || W == 2 || W == 4 || W == 9 || W == 18
                                          || W == 36)) begin
      $display("DP16KD model: unsupported widths A=%0d B=%0d", DATA_WIDTH_A, DATA_WIDTH_B);
      $finish;
    end
    for (i = 0; i < DEPTH; i = i + 1) mem[i] = 0;
  end

  wire [35:0] word_mask = (W == 36) ? {36{1'b1}} : ((36'd1 << W) - 1);
  wire [35:0] wmask = word_mask & {{9{be[3]}}, {9{be[2]}}, {9{be[1]}}, {9{be[0]}}}
                      & ((W >= 18) ? {36{1'b1}} : word_mask);

  always @(posedge CLKA) begin
    if (RSTA || CSA0 || CSA1 || CSA2 || RSTB || CSB0 || CSB1 || CSB2) begin
      $display("DP16KD model: reset and chip selects must be tied low");
      $finish;
    end
    if (CEA && WEA)
      mem[ada[13:S]] <= (mem[ada[13:S]] & ~wmask) | (wdata & wmask);
  end

  always @(posedge CLKB) begin
    if (WEB) begin
      $display("DP16KD model: port B writes are not modelled");
      $finish;
    end
    if (CEB) latch <= mem[adb[13:S]] & word_mask;
    if (OCEB) outreg <= latch;
  end

  wire [35:0] out_b = (REGMODE_B == "OUTREG") ? outreg : latch;
  wire [35:0] out = out_b;
  assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9,
          DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = (W == 36) ? out[17:0] : 18'b0;
  assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9,
          DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = (W == 36) ? out[35:18]
                                                                            : out[17:0];
endmodule
