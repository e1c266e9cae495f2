// dq_matmul_rows (prefill tiles) against the scalar dots, and its throughput in GMAC/s on one thread.
// Build: S=Sources/CKernels; clang -O3 -fno-math-errno -I$S -I$S/include $S/*.c scripts/tile_bench.c -o /tmp/tile_bench -lpthread -lm
// Run:   /tmp/tile_bench [columns 2048] [rows 256] [tokens 64]
#include "ckernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static float frand(){return (float)rand()/RAND_MAX*2-1;}
int main(int argc,char**argv){
  uint32_t types[]={DQ_TYPE_Q4_0,DQ_TYPE_Q5_0,DQ_TYPE_Q8_0,DQ_TYPE_Q4_K,DQ_TYPE_Q5_K,DQ_TYPE_Q6_K};
  int n=argc>1?atoi(argv[1]):2048, rows=argc>2?atoi(argv[2]):256, tokens=argc>3?atoi(argv[3]):64;
  for(int ti=0;ti<6;ti++){
    uint32_t type=types[ti]; if(ti>=3 && n%256) continue; setvbuf(stdout,0,_IONBF,0);uint32_t dt=dq_vec_dot_type(type);
    size_t rs=dq_row_size(type,n), xs=dq_row_size(dt,n);
    char*w=malloc(rs*rows); char*x=malloc(xs*tokens); float*f=malloc(n*4);
    for(int r=0;r<rows;r++){for(int i=0;i<n;i++)f[i]=frand();dq_quantize_row(type,f,w+r*rs,n);}
    for(int t=0;t<tokens;t++){for(int i=0;i<n;i++)f[i]=frand();dq_quantize_row(dt,f,x+t*xs,n);}
    float*y=malloc(4*rows*tokens);
    int begin=3,end=rows-1; int ldy=end-begin;
    dq_matmul_rows(type,n,w,rs,x,xs,tokens,y,ldy,begin,end);
    double maxerr=0,maxref=0;
    for(int t=0;t<tokens;t++)for(int r=begin;r<end;r++){
      float ref=dq_vec_dot_ref(type,n,w+r*rs,x+t*xs); float got=y[t*ldy+r-begin];
      double e=fabs(got-ref); if(e>maxerr)maxerr=e; if(fabs(ref)>maxref)maxref=fabs(ref);}
    int reps=3; double best=1e9;
    for(int k=0;k<reps;k++){double t0=now(); dq_matmul_rows(type,n,w,rs,x,xs,tokens,y,rows,0,rows); double d=now()-t0; if(d<best)best=d;}
    printf("%s n=%d rows=%d tok=%d maxerr=%.3g maxref=%.3g  %.2f GMAC/s\n",dq_type_name(type),n,rows,tokens,maxerr,maxref,(double)n*rows*tokens/best*1e-9);
  }
}
