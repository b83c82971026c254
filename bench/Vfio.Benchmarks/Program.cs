// SPDX-License-Identifier: MIT
using BenchmarkDotNet.Running;

// dotnet run -c Release --project bench/Vfio.Benchmarks -- --filter '*' [--job short]
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
