// SPDX-License-Identifier: MIT
namespace Vfio.Simulator.Tests;

/// <summary>
/// Names the section of ../shared/reference/kernel-uapi-6.12.md a test checks (e.g. "§4.4"): every model test
/// carries one, so a reader can find the rule and a change of the rule finds its tests.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class SpecAttribute(string section) : Attribute
{
    public string Section { get; } = section;
}
