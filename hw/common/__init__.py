"""Stream building blocks shared by every family, and the memory port."""

from ..registry import BlockInfo
from .arbiter import ArbiterConfig, RoundRobinArbiter, StreamDemux
from .bram import PipelinedRAM, PipelinedRAMConfig, RAMQueue, RAMQueueConfig
from .memory_port import BlockRAMConfig, BlockRAMMemory, MemoryPortConfig, MemoryPortSignature
from .queue import Queue, QueueConfig
from .skid_buffer import SkidBuffer, SkidBufferConfig
from .validate import packet_layout
from .width_converter import WidthConverterConfig, WidthDownConverter, WidthUpConverter

__all__ = [
    "ArbiterConfig", "RoundRobinArbiter", "StreamDemux",
    "BlockRAMConfig", "BlockRAMMemory", "MemoryPortConfig", "MemoryPortSignature",
    "PipelinedRAM", "PipelinedRAMConfig", "RAMQueue", "RAMQueueConfig",
    "Queue", "QueueConfig",
    "SkidBuffer", "SkidBufferConfig",
    "WidthConverterConfig", "WidthDownConverter", "WidthUpConverter",
    "packet_layout",
]

BLOCKS = [
    BlockInfo("queue", "common", Queue, QueueConfig,
              {"default": QueueConfig(),
               "wide": QueueConfig(data_width=64, depth=512),
               "shallow": QueueConfig(depth=2, buffered=False)},
              "stream FIFO on lib.fifo"),
    BlockInfo("ram_queue", "common", RAMQueue, RAMQueueConfig,
              {"default": RAMQueueConfig(),
               "wide": RAMQueueConfig(width=72, depth=512),
               "shallow": RAMQueueConfig(width=16, depth=4)},
              "stream FIFO whose output is the block RAM's output register"),
    BlockInfo("pipelined_ram", "common", PipelinedRAM, PipelinedRAMConfig,
              {"default": PipelinedRAMConfig(),
               "wide": PipelinedRAMConfig(width=36, depth=512)},
              "simple dual-port RAM, read latch + output register (DP16KD OUTREG on ECP5)"),
    BlockInfo("skid_buffer", "common", SkidBuffer, SkidBufferConfig,
              {"default": SkidBufferConfig(),
               "wide": SkidBufferConfig(data_width=128)},
              "two-entry pipeline register, all paths registered"),
    BlockInfo("width_up", "common", WidthUpConverter, WidthConverterConfig,
              {"default": WidthConverterConfig(),
               "byte_to_word64": WidthConverterConfig(narrow_width=8, ratio=8)},
              "N narrow beats -> one wide beat (first/last, count)"),
    BlockInfo("width_down", "common", WidthDownConverter, WidthConverterConfig,
              {"default": WidthConverterConfig(),
               "word64_to_byte": WidthConverterConfig(narrow_width=8, ratio=8)},
              "one wide beat -> count narrow beats (first/last)"),
    BlockInfo("arbiter", "common", RoundRobinArbiter, ArbiterConfig,
              {"default": ArbiterConfig(),
               "pair": ArbiterConfig(ports=2, data_width=32),
               "beats": ArbiterConfig(ports=3, packets=False)},
              "round-robin N -> 1 merge, packet-locked"),
    BlockInfo("demux", "common", StreamDemux, ArbiterConfig,
              {"default": ArbiterConfig(),
               "pair": ArbiterConfig(ports=2, data_width=32)},
              "1 -> N by the port field"),
    BlockInfo("bram_memory", "common", BlockRAMMemory, BlockRAMConfig,
              {"default": BlockRAMConfig(),
               "small": BlockRAMConfig(addr_width=8, data_width=8, length_width=4, depth=256),
               "wide": BlockRAMConfig(addr_width=16, data_width=64, depth=4096)},
              "block-RAM memory behind the memory port"),
]
