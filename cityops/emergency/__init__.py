"""Emergency management (应急管理): incidents, graded response plans that become department tasks,
flat information reporting measured end to end, CAP 1.2 public warnings, the mobilisation ladder
(emergency command: ``incidents``, ``plans``, ``tasks``, ``reporting``, ``alerts``, ``cap``,
``mobilisation``; see docs/emergency.md)."""
