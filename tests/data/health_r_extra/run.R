suppressPackageStartupMessages(library(surveillance))
Y <- as.matrix(read.csv("y.csv", header=FALSE))
dates <- seq(as.Date("2015-01-05"), by="1 week", length.out=nrow(Y))
s <- sts(observed=Y, epoch=as.numeric(dates), epochAsDate=TRUE, freq=52, start=c(2015,2))
si <- sts(observed=Y, freq=52, start=c(2015,2))
out <- function(name, m) write.table(m, paste0(name,".csv"), sep=",", row.names=FALSE, col.names=FALSE, na="NA")
fmt <- function(x) { x[is.nan(x)] <- NA; x }
for (meth in c("C1","C2","C3")) for (ms in c(0, 0.5)) {
  r <- earsC(si, control=list(method=meth, minSigma=ms, range=NULL))
  out(paste0("ears_",meth,"_",ms), cbind(fmt(upperbound(r)), alarms(r)))
}
for (j in 1:ncol(Y)) {
  for (mm in c("null","glm")) {
    ctl <- list(range=313:416)
    if (mm=="glm") ctl$m <- "glm"
    r <- algo.cusum(sts2disProg(si[,j]), control=ctl)
    out(paste0("cusum_",mm,"_",j), cbind(fmt(r$upperbound), as.integer(r$alarm), fmt(r$cusum)))
  }
}
cfgs <- list(
  def=list(),
  nb=list(thresholdMethod="nbPlugin"),
  muan=list(thresholdMethod="muan"),
  nouf=list(noPeriods=10, b=4, w=3, weightsThreshold=2.58, pastWeeksNotIncluded=26, pThresholdTrend=1, alpha=0.1),
  orig=list(noPeriods=1, weightsThreshold=1, pastWeeksNotIncluded=3, pThresholdTrend=0.05, b=3, w=2, alpha=0.01),
  half=list(powertrans="1/2", reweight=FALSE, trend=FALSE),
  pw0=list(pastWeeksNotIncluded=0, noPeriods=3, b=3)
)
for (nm in names(cfgs)) for (mode in c("idx","date")) {
  ss <- if (mode=="idx") si else s
  ctl <- modifyList(cfgs[[nm]], list(range=300:416))
  r <- suppressWarnings(farringtonFlexible(ss, control=ctl))
  out(paste0("ff_",nm,"_",mode), cbind(fmt(upperbound(r)), alarms(r), fmt(r@control$expected), fmt(r@control$phiVector)))
}
